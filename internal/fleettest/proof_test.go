//go:build linux

package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

// soakEnv lengthens the load of TestFleet: a duration such as 5m. The
// default fits CI.
const soakEnv = "ROUTINES_FLEET_SOAK"

// outage is how long PostgreSQL is stopped.
const outage = 5 * time.Second

// TestFleet is the proof of remote mode (issue 12): 2 servers and 3
// workers on one PostgreSQL take about a thousand runs from API calls to
// either server, events with a dedupe key and three schedules, while
// workers are SIGKILLed and started again, a server is SIGKILLed and
// started again, and PostgreSQL is stopped for 5 s and started again.
// Then every accepted run ended once and succeeded, no step recorded
// finished ran again, concurrency.max held, each tick made one run, the
// API failed fast during the outage and served again after it, and the
// workers listen for wake-ups again.
func TestFleet(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a minute of real servers, workers and PostgreSQL: not with -short")
	}
	load := 24 * time.Second
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < load {
			t.Fatalf("%s=%s: want a duration of at least %s", soakEnv, v, load)
		}
		load = d
	}
	seed := uint64(time.Now().UnixNano())
	// One generator for the load's goroutine, one for the chaos.
	loadRng, chaosRng := rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d, load %s", seed, load)

	f := newFleet(t)
	first := f.machine("server-1")
	f.connect()
	f.machine("server-2")
	for i := 1; i <= 3; i++ {
		f.machine(fmt.Sprintf("worker-%d", i))
	}
	f.push(first)
	f.waitServing(len(routineSteps))
	f.start = time.Now()

	var (
		mu    sync.Mutex
		calls []*call
		sent  sync.WaitGroup
		stop  = make(chan struct{})
	)
	sent.Add(1)
	go func() {
		defer sent.Done()
		sem := make(chan struct{}, 16)
		for at := time.Duration(0); ; at += time.Duration(loadRng.Int64N(int64(2 * time.Second / callsPerSecond))) {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(f.start.Add(at))):
			}
			a := newAction(loadRng)
			name, p := f.server(a.server)
			sem <- struct{}{}
			sent.Add(1)
			go func() {
				defer func() { <-sem; sent.Done() }()
				c := f.post(p, name, a.path, a.body, a.host)
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}()
		}
	}()
	chaos := f.chaos(chaosRng, load)
	// Calls go on a while after the last of the chaos, which the checks
	// want served.
	time.Sleep(4 * time.Second)
	close(stop)
	sent.Wait()
	// The 3 workers listen for wake-ups, the 2 servers for revocations of
	// tokens, on the one listening connection of a store each.
	f.checkListening(5)
	// The servers die too: the ticks end, and the workers drain the queue.
	ticksEnd := time.Now()
	for _, name := range []string{"server-1", "server-2"} {
		_, p := f.server(name)
		p.kill()
	}
	drained := f.waitFinal(60*time.Second + load)
	t.Logf("%d API calls in %s (a load of %s and the chaos); the queue drained %s after the servers died",
		len(calls), ticksEnd.Sub(f.start).Round(time.Millisecond), load, drained.Round(time.Millisecond))

	p := f.read()
	p.calls, p.chaos, p.ticksEnd = calls, chaos, ticksEnd
	p.check(t)
}

// action is one API call of the load: to which server, what.
type action struct {
	server string
	path   string
	body   string
	host   string // of an event
}

// callsPerSecond is the pace of the load's API calls.
const callsPerSecond = 45

// newAction draws one API call, to either server: an invocation of noop
// (58%), multi (18%) or limited (6%), or an event host.alert (18%) of one
// of 60 hosts, each host's events deduplicated into one run.
func newAction(rng *rand.Rand) action {
	a := action{server: fmt.Sprintf("server-%d", 1+rng.IntN(2))}
	switch x := rng.IntN(100); {
	case x < 58:
		a.path = "/v1/routines/noop/runs"
	case x < 76:
		a.path = "/v1/routines/multi/runs"
	case x < 82:
		a.path = "/v1/routines/limited/runs"
	default:
		a.host = fmt.Sprintf("web%02d", rng.IntN(60))
		a.path, a.body = "/v1/events/host.alert", fmt.Sprintf(`{"host":%q}`, a.host)
	}
	return a
}

// server returns the current incarnation of a server.
func (f *fleet) server(name string) (string, *proc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return name, f.servers[name]
}

// chaosEvent is something the chaos did, for the checks and the report.
type chaosEvent struct {
	at, until time.Duration // from the fleet's start; until: when it was over (restarted)
	what      string        // "kill worker-2", "kill server-1", "postgres stopped"
	// Of PostgreSQL: when it had stopped (its sessions ended), and when it
	// was started again (until: when it accepted connections).
	stopped, restart time.Duration
}

// chaos kills a random worker four times (each started again after 0.3
// to 1.5 s), kills a random server once (started again after 1 s), and
// stops PostgreSQL for outage, in a random order at random times of the
// load, one thing at a time, and returns what it did. A longer soak does
// that again for each 24 s.
func (f *fleet) chaos(rng *rand.Rand, load time.Duration) []chaosEvent {
	kinds := []string{"postgres"}
	for range load / (24 * time.Second) {
		kinds = append(kinds, "server", "worker", "worker", "worker", "worker")
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	// Each thing takes about its length, and the time left is spread
	// before them.
	length := map[string]time.Duration{"postgres": outage + 2*time.Second, "server": 2500 * time.Millisecond, "worker": 2500 * time.Millisecond}
	slack := load
	weights, sum := make([]float64, len(kinds)), 0.0
	for i, kind := range kinds {
		slack -= length[kind]
		weights[i] = rng.Float64()
		sum += weights[i]
	}
	var done []chaosEvent
	for i, kind := range kinds {
		time.Sleep(time.Duration(float64(slack) * weights[i] / sum))
		ev := chaosEvent{at: time.Since(f.start)}
		switch kind {
		case "postgres":
			ev.what = "postgres stopped"
			f.pg.Stop(f.t)
			ev.stopped = time.Since(f.start)
			time.Sleep(outage)
			ev.restart = time.Since(f.start)
			f.pg.Start(f.t)
		case "server":
			name := fmt.Sprintf("server-%d", 1+rng.IntN(2))
			ev.what = "kill " + name
			_, p := f.server(name)
			p.kill()
			time.Sleep(time.Second)
			f.machine(name)
		case "worker":
			name := fmt.Sprintf("worker-%d", 1+rng.IntN(3))
			ev.what = "kill " + name
			f.mu.Lock()
			p := f.workers[name]
			f.mu.Unlock()
			p.kill()
			time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
			f.machine(name)
		}
		ev.until = time.Since(f.start)
		f.t.Logf("t=%s %s; back at t=%s", ev.at.Round(time.Millisecond), ev.what, ev.until.Round(time.Millisecond))
		done = append(done, ev)
	}
	return done
}

// checkListening checks that n processes listen for notifications (the
// workers' wake-ups, the servers' revocations of tokens): those that
// lived through the outage listen again.
func (f *fleet) checkListening(n int) {
	f.t.Helper()
	var got int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN routines_wake'`).Scan(&got)
		if err == nil && got == n {
			f.t.Logf("notifications: %d processes listen after the outage", got)
			return
		}
	}
	f.t.Errorf("notifications: %d connections listen, want %d (a process that lived through the outage listens no more)", got, n)
}

// waitServing waits until every server serves n routines.
func (f *fleet) waitServing(n int) {
	f.t.Helper()
	for _, name := range []string{"server-1", "server-2"} {
		_, p := f.server(name)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/v1/routines", nil)
			req.Header.Set("Authorization", "Bearer "+f.token)
			var list []api.Routine
			if resp, err := client.Do(req); err == nil {
				json.NewDecoder(resp.Body).Decode(&list)
				resp.Body.Close()
			}
			if len(list) == n {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("%s serves %d routines, want %d", name, len(list), n)
			}
		}
	}
}

// waitFinal waits until every run in the store is final, and returns how
// long it took.
func (f *fleet) waitFinal(limit time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	for {
		var n int
		err := f.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM runs WHERE state IN ('queued', 'running')`).Scan(&n)
		if err == nil && n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			rows, _ := f.pool.Query(context.Background(), `SELECT id, routine, state, worker, attempt, lease_until, not_before
				FROM runs WHERE state IN ('queued', 'running') ORDER BY queued_at LIMIT 20`)
			for rows.Next() {
				var id, routine, state, worker string
				var attempt int
				var lease, notBefore *time.Time
				rows.Scan(&id, &routine, &state, &worker, &attempt, &lease, &notBefore)
				f.t.Logf("not final: %s %s %s worker=%q attempt=%d lease_until=%v not_before=%v", id, routine, state, worker, attempt, lease, notBefore)
			}
			rows.Close()
			f.t.Fatalf("%d runs not final %s after the load (err %v)", n, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
