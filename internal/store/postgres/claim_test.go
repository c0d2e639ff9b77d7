package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// TestClaimCeilingsConcurrent has workers, each with a store (a pool) of
// its own as on machines of their own, claim and finish the runs of
// routines with ceilings, and of a group of routines with a ceiling (a
// namespace's max_running), and counts the running runs of each routine
// and of the group in the database after every claim: never more than
// its ceiling. Two claims that each counted max - 1 running runs and each
// took one would show here as max + 1.
func TestClaimCeilingsConcurrent(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	var iso string
	if err := b.raw(t).QueryRow(b.ctx, "SHOW default_transaction_isolation").Scan(&iso); err != nil || iso != "read committed" {
		t.Fatalf("isolation %q, %v; the test is of READ COMMITTED", iso, err)
	}
	const workers = 12
	ceilings := map[string]int{"serial": 1, "three": 3}
	// Group team holds three, with its ceiling, and pair, without.
	groups, groupCeilings := map[string]string{"three": "team", "pair": "team"}, map[string]int{"team": 4}
	watched := map[string]int{"serial": 1, "three": 3, "team": 4} // what check counts
	perRoutine := map[string]int{"serial": 60, "three": 120, "free": 60, "pair": 80}
	total := 0
	queued := time.Now()
	for i := range 120 {
		for name, n := range perRoutine {
			if i >= n {
				continue
			}
			total++
			if _, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: name,
				QueuedAt: queued.Add(time.Duration(total) * time.Microsecond)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	var (
		finished atomic.Int64
		mu       sync.Mutex
		claimed  = map[string]string{} // run id → worker
		most     = map[string]int{}    // routine → most running runs seen
		wg       sync.WaitGroup
	)
	// check counts the running runs of each routine with a ceiling, and
	// of the group.
	check := func(st *postgres.Store, who string) bool {
		for name, ceiling := range watched {
			p := &store.RunCountParams{Routine: name, States: []routine.State{routine.StateRunning}}
			if name == "team" {
				p.Routine, p.Routines = "", []string{"three", "pair"}
			}
			counts, err := st.RunCount(b.ctx, p)
			if err != nil {
				t.Errorf("%s: RunCount: %v", who, err)
				return false
			}
			n := counts[routine.StateRunning]
			mu.Lock()
			most[name] = max(most[name], n)
			mu.Unlock()
			if n > ceiling {
				t.Errorf("%s: %d runs of %s running, past its ceiling of %d", who, n, name, ceiling)
				return false
			}
		}
		return true
	}
	done := make(chan struct{})
	wg.Go(func() { // a watcher, between the workers' checks
		for {
			select {
			case <-done:
				return
			default:
			}
			if !check(s, "watcher") {
				return
			}
		}
	})
	var workersWG sync.WaitGroup
	for w := range workers {
		st := b.open(t, postgres.Options{})
		worker := fmt.Sprint("w", w)
		wake := st.Wakeups(b.ctx)
		workersWG.Go(func() {
			for finished.Load() < int64(total) && !t.Failed() {
				runs, err := st.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: time.Now(), Lease: time.Hour,
					Ceilings: ceilings, Groups: groups, GroupCeilings: groupCeilings, Limit: 1 + rand.IntN(3)})
				if err != nil {
					t.Errorf("%s: RunClaim: %v", worker, err)
					return
				}
				if len(runs) == 0 {
					select { // a run ending elsewhere wakes this worker; the timer is a fallback
					case <-wake:
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				mu.Lock()
				for _, r := range runs {
					if prev, ok := claimed[r.ID]; ok {
						t.Errorf("run %s claimed by %s and %s", r.ID, prev, worker)
					}
					claimed[r.ID] = worker
				}
				mu.Unlock()
				if !check(st, worker) {
					return
				}
				if err := execute(b.ctx, st, runs, &finished); err != nil {
					t.Errorf("%s: %v", worker, err)
					return
				}
			}
		})
	}
	workersWG.Wait()
	close(done)
	wg.Wait()
	if t.Failed() {
		return
	}
	counts, err := s.RunCount(b.ctx, &store.RunCountParams{})
	if err != nil {
		t.Fatal(err)
	}
	if counts[routine.StateSucceeded] != total || len(counts) != 1 || len(claimed) != total {
		t.Fatalf("runs by state %v, %d claimed; want all %d claimed once and succeeded", counts, len(claimed), total)
	}
	// The workers did press on the ceilings.
	for name, ceiling := range watched {
		if most[name] != ceiling {
			t.Errorf("at most %d runs of %s running at once, want its ceiling %d reached", most[name], name, ceiling)
		}
	}
	t.Logf("most running at once: %v", most)
}

// TestClaimReservedConcurrent has workers, each with a store of its own,
// claim and finish the runs of a routine with reserved slots and of one
// without, and checks after every claim, in one snapshot of the database,
// that the runs of the unreserved routine leave the reserved slots free:
// free runs + max(reserved runs, reserved) ≤ the fleet's slots. Two
// claims that each saw the last slot beyond the reservation free and both
// took it would show here.
func TestClaimReservedConcurrent(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	// The workers would run up to twice the slots they have if let: the
	// claims press on the fleet's bound all along.
	const (
		workers  = 6
		slots    = 1 // per worker: 6 in the fleet
		reserved = 3
	)
	total := 0
	queued := time.Now()
	for i := range 150 {
		name := "free"
		if i%5 == 4 {
			name = "res"
		}
		total++
		if _, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: name,
			QueuedAt: queued.Add(time.Duration(i) * time.Microsecond)}); err != nil {
			t.Fatal(err)
		}
	}
	const countSQL = `SELECT count(*) FILTER (WHERE routine = 'free'), count(*) FILTER (WHERE routine = 'res')
		FROM runs WHERE state = 'running'`
	var (
		finished atomic.Int64
		mostRes  atomic.Int64
		wg       sync.WaitGroup
	)
	for w := range workers {
		st, conn := b.open(t, postgres.Options{}), b.raw(t)
		worker := fmt.Sprint("w", w)
		if err := st.WorkerBeat(b.ctx, &store.WorkerBeatParams{ID: worker, Slots: slots, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for finished.Load() < int64(total) && !t.Failed() {
				runs, err := st.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: time.Now(), Lease: time.Hour,
					Reserved: map[string]int{"res": reserved}, Limit: 2})
				if err != nil {
					t.Errorf("%s: RunClaim: %v", worker, err)
					return
				}
				if len(runs) == 0 {
					time.Sleep(time.Millisecond) // the runs of others end
					continue
				}
				var free, res int
				if err := conn.QueryRow(b.ctx, countSQL).Scan(&free, &res); err != nil {
					t.Errorf("%s: count: %v", worker, err)
					return
				}
				if free+max(res, reserved) > workers*slots {
					t.Errorf("%s: %d free and %d res runs running: the %d slots reserved for res are not kept free of %d",
						worker, free, res, reserved, workers*slots)
					return
				}
				if int64(res) > mostRes.Load() {
					mostRes.Store(int64(res))
				}
				if err := execute(b.ctx, st, runs, &finished); err != nil {
					t.Errorf("%s: %v", worker, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	counts, err := s.RunCount(b.ctx, &store.RunCountParams{})
	if err != nil || counts[routine.StateSucceeded] != total || len(counts) != 1 {
		t.Fatalf("runs by state %v, %v; want all %d succeeded", counts, err, total)
	}
	t.Logf("most runs of res running at once: %d", mostRes.Load())
}

// execute "executes" claimed runs for up to 2 ms, then ends them
// succeeded, counting them in finished.
func execute(ctx context.Context, st store.Store, runs []*store.ClaimedRun, finished *atomic.Int64) error {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	for _, r := range runs {
		r.State = routine.StateSucceeded
		if err := st.Checkpoint(ctx, &store.CheckpointParams{Run: r.Run}); err != nil {
			return fmt.Errorf("finish %s: %w", r.ID, err)
		}
		finished.Add(1)
	}
	return nil
}
