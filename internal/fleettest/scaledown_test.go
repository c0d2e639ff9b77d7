//go:build linux

package fleettest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The drain of the scale-down test: a grace long enough for the quick
// runs in flight to end, too short for the long ones, whose step s2
// outlasts it; and a lease so long that a run cut short that was not
// handed back at once would wait for it, far past the test's bounds. The
// quick runs' step is long enough to be still running at SIGTERM when
// the four runs of worker-1 begin a second apart on a loaded machine.
const (
	drainGrace = 4 * time.Second
	drainLease = 30 * time.Second
	quickSleep = 2 * time.Second
	longSleep  = 8 * time.Second
)

// workerID is the id a worker says it is up with.
var workerID = regexp.MustCompile(`worker up \(([^,)]+)`)

// TestScaleDown is what an autoscaler or a rolling update does to a
// worker: SIGTERM with runs in flight. The worker stops claiming; the
// runs that end within --grace end there; those still running when it is
// over go back to the queue at once, their finished steps kept, and the
// other worker resumes each at its first unfinished step. Every run ends
// succeeded exactly once, every step ran to its end exactly once (a step
// cut short runs again from its start, as docs/runs.md says), and the
// hand-over takes milliseconds, not the lease.
func TestScaleDown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real PostgreSQL, a server and two workers: not with -short")
	}
	f := newFleet(t)
	server := f.machine("server-1")
	f.connect()
	head := "permissions:\n  write: [" + filepath.Dir(f.effects()) + "]\n"
	f.pushFiles(server, map[string]string{
		"quick": "name: quick\n" + head + "steps:\n" + f.step("s", fmt.Sprint(quickSleep.Seconds())),
		"long":  "name: long\n" + head + "steps:\n" + f.step("s1", "") + f.step("s2", fmt.Sprint(longSleep.Seconds())) + f.step("s3", ""),
	})
	flags := []string{"--grace", drainGrace.String(), "--lease", drainLease.String()}
	w1 := f.machine("worker-1", flags...)
	id1 := workerID.FindStringSubmatch(w1.tail(20))[1]

	// worker-1 has 4 slots: 2 quick and 2 long runs fill them, and 2 more
	// long runs wait in the queue.
	var runs []string
	for _, name := range []string{"quick", "quick", "long", "long", "long", "long"} {
		c := f.post(server, "server-1", "/v1/routines/"+name+"/runs", "{}", "")
		if c.err != nil {
			t.Fatalf("invoke %s: %v", name, c.err)
		}
		runs = append(runs, c.runs[0].RunID)
	}
	f.waitBegun(runs, slots, 30*time.Second)

	// SIGTERM to the process alone, as Docker, systemd (KillMode=mixed)
	// and the kubelet send it; worker-2 comes up while worker-1 drains.
	term := time.Now()
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.machine("worker-2", flags...)
	select {
	case <-w1.exited:
	case <-time.After(drainGrace + 15*time.Second):
		t.Fatalf("worker-1 still runs %s after SIGTERM, with a grace of %s", time.Since(term), drainGrace)
	}
	exited := time.Since(term)
	if !w1.cmd.ProcessState.Success() {
		t.Errorf("worker-1 exited with %s after SIGTERM, want 0", w1.cmd.ProcessState)
	}
	f.waitFinal(drainGrace + longSleep + 20*time.Second)

	// Every run succeeded, once.
	ctx := context.Background()
	ended := map[string]int{}
	rows, err := f.pool.Query(ctx, `SELECT run_id, count(*) FROM proof_run_events WHERE new_state = 'succeeded' GROUP BY run_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		ended[id] = n
	}
	rows.Close()
	final := map[string]string{} // run → the worker it ended on
	for _, id := range runs {
		var state, worker string
		if err := f.pool.QueryRow(ctx, `SELECT state, worker FROM runs WHERE id = $1`, id).Scan(&state, &worker); err != nil {
			t.Fatal(err)
		}
		if state != "succeeded" || ended[id] != 1 {
			t.Errorf("run %s: %s, recorded succeeded %d times; want succeeded once", id, state, ended[id])
		}
		final[id] = worker
	}

	// Every step ran to its end once; a step began twice only when the
	// drain cut it short, and then it is s2 of a long run handed over.
	effects := readEffects(t, f.effects())
	var handedOver, finishedInGrace int
	var handover time.Duration
	for i, id := range runs {
		steps := []string{"s"}
		if i >= 2 {
			steps = []string{"s1", "s2", "s3"}
		}
		for _, s := range steps {
			e := effects[id+" "+s]
			if len(e.ends) != 1 {
				t.Errorf("run %s step %s ran to its end %d times, want once", id, s, len(e.ends))
			}
			if len(e.begins) == 2 && s == "s2" && final[id] != id1 {
				handedOver++
				handover = max(handover, e.begins[1].Sub(term)-drainGrace)
			} else if len(e.begins) != 1 {
				t.Errorf("run %s step %s began %d times, want once (or twice when the drain cut it short)", id, s, len(e.begins))
			}
		}
		if i < 2 && final[id] == id1 {
			if end := effects[id+" s"].ends; len(end) == 1 && end[0].After(term) {
				finishedInGrace++
			}
		}
	}
	// The quick runs end on worker-1 within the grace, and the two long
	// runs it had started go on elsewhere: both halves of a drain happen.
	if finishedInGrace != 2 || handedOver != 2 {
		t.Errorf("%d quick runs ended on worker-1 after SIGTERM, %d long runs were cut short and resumed elsewhere; want 2 and 2", finishedInGrace, handedOver)
	}
	// Handed back at once, not after the lease.
	if handover > drainLease/3 {
		t.Errorf("a run cut short by the drain resumed %s after the grace ended: it waited for its lease (%s) instead of being requeued", handover, drainLease)
	}
	t.Logf("worker-1 drained and exited %s after SIGTERM (grace %s); the runs it cut short resumed on worker-2 at most %s after the grace ended",
		exited.Round(time.Millisecond), drainGrace, handover.Round(time.Millisecond))
}

// stepEffects are the begin and end times of one step of one run, from
// the effects log, in the order written.
type stepEffects struct{ begins, ends []time.Time }

// readEffects reads the effects log by "run step".
func readEffects(t *testing.T, path string) map[string]*stepEffects {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	out := map[string]*stepEffects{}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		// begin|end RUN STEP TOKEN EPOCHREALTIME
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			t.Fatalf("effects log: %q", sc.Text())
		}
		sec, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			t.Fatalf("effects log: %q: %v", sc.Text(), err)
		}
		at := time.UnixMicro(int64(sec * 1e6))
		e := out[f[1]+" "+f[2]]
		if e == nil {
			e = &stepEffects{}
			out[f[1]+" "+f[2]] = e
		}
		if f[0] == "begin" {
			e.begins = append(e.begins, at)
		} else {
			e.ends = append(e.ends, at)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitBegun waits until n of runs have begun a step.
func (f *fleet) waitBegun(runs []string, n int, limit time.Duration) {
	f.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(f.effects())
		begun := 0
		for _, id := range runs {
			if strings.Contains(string(data), "begin "+id+" ") {
				begun++
			}
		}
		if begun >= n {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d runs began in %s, want %d", begun, limit, n)
		}
	}
}
