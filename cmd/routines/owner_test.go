//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// writeRoutine writes yaml to dir/sub/routine.yaml.
func writeRoutine(t *testing.T, dir, sub, yaml string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sub, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// projectStore opens the project's store beside the processes using it.
func projectStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// postRun queues a run of the routine through the daemon's API.
func postRun(t *testing.T, url, name string) string {
	t.Helper()
	resp, err := http.Post(url+"/v1/routines/"+name+"/runs", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var queued struct {
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&queued); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("queue a run of %s: %d %v", name, resp.StatusCode, err)
	}
	return queued.RunID
}

// waitFinal waits until every run is in a final state and returns them.
func waitFinal(t *testing.T, st store.Store, ids []string, within time.Duration, why string) map[string]*routine.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		runs := map[string]*routine.Run{}
		for _, id := range ids {
			run, err := st.RunGet(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if run.State.Final() {
				runs[id] = run
			}
		}
		if len(runs) == len(ids) {
			return runs
		}
		if time.Now().After(deadline) {
			var open []string
			for _, id := range ids {
				if runs[id] == nil {
					open = append(open, id)
				}
			}
			t.Fatalf("runs %v not finished after %s (%s)", open, within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEscapeRunOnceBesideDaemon runs many run-once processes at once
// while a daemon serves the same project. Each run must be executed by
// its run-once alone: created running and leased to it, it is never in
// the queue the daemon claims from. Before, run-once queued its run and
// then executed it, and the daemon claimed some in between: their first
// step ran twice and run-once exited 1.
func TestEscapeRunOnceBesideDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeRoutine(t, dir, ".", `name: fg
steps:
  - id: s1
    run: echo "$ROUTINES_RUN_ID s1 $$" >> steps.log
  - id: s2
    run: echo "$ROUTINES_RUN_ID s2 $$" >> steps.log
`)
	startDaemon(t, dir)
	const runs, parallel = 60, 8
	type result struct {
		pid   int
		runID string
		err   error
		out   string
	}
	results := make([]result, runs)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := command("run-once", dir)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Start()
			if err == nil {
				err = cmd.Wait()
			}
			r := result{err: err, out: out.String()}
			if cmd.Process != nil {
				r.pid = cmd.Process.Pid
			}
			if f := strings.Fields(r.out); len(f) > 1 && f[0] == "run" {
				r.runID = f[1]
			}
			results[i] = r
		}()
	}
	wg.Wait()

	data, err := os.ReadFile(filepath.Join(dir, "steps.log"))
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		started[f[0]+" "+f[1]]++
	}
	st := projectStore(t, dir)
	taken := 0
	for _, r := range results {
		if r.err != nil || r.runID == "" {
			t.Errorf("run-once %s exited %v (ownership layer: the run was taken by the daemon?):\n%s", r.runID, r.err, r.out)
			continue
		}
		for _, s := range []string{"s1", "s2"} {
			if n := started[r.runID+" "+s]; n != 1 {
				t.Errorf("step %s of run %s started %d times, want 1 (ownership layer failed: two owners executed it)", s, r.runID, n)
			}
		}
		run, err := st.RunGet(context.Background(), r.runID)
		if err != nil {
			t.Fatal(err)
		}
		// The owner id is host:pid:…: the run-once process's own.
		if parts := strings.Split(run.Worker, ":"); len(parts) != 3 || parts[1] != strconv.Itoa(r.pid) {
			taken++
			t.Errorf("run %s held by %q, not by its run-once (pid %d)", r.runID, run.Worker, r.pid)
		}
		if run.State != routine.StateSucceeded {
			t.Errorf("run %s ended %s", r.runID, run.State)
		}
	}
	if len(started) != 2*runs {
		t.Errorf("%d steps started, want %d", len(started), 2*runs)
	}
	t.Logf("%d run-once runs beside a daemon; %d taken by the daemon", runs, taken)
}

func show(runs []*routine.Run) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "[%s %s worker %q] ", r.ID, r.State, r.Worker)
	}
	return b.String()
}

// stepRecord is a line a step of the crash tests writes: start, tick or
// end, with its run, step, pid and the time.
type stepRecord struct {
	kind, run, step string
	pid             int
	at              time.Time
}

func readRecords(t *testing.T, path string) []stepRecord {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []stepRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 5 {
			continue // a line cut short by a kill
		}
		pid, err1 := strconv.Atoi(fields[3])
		ns, err2 := strconv.ParseInt(fields[4], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		recs = append(recs, stepRecord{fields[0], fields[1], fields[2], pid, time.Unix(0, ns)})
	}
	return recs
}

// slowStep is a run step that records its start, a tick every 0.2 s
// while it works (so its last record tells when it stopped, had it been
// killed), and its end.
func slowStep(id, log string, ticks int) string {
	return fmt.Sprintf(`  - id: %[1]s
    run: |
      rec() { echo "$1 $ROUTINES_RUN_ID %[1]s $$ $(date +%%s%%N)" >> %[2]s; }
      rec start
      for i in $(seq %[3]d); do sleep 0.2; rec tick; done
      rec end
`, id, log, ticks)
}

// TestServeCrashRestartResumesAtOnce SIGKILLs the daemon ten times while
// runs of slow steps are in flight, and restarts it each time with the
// default 30 s lease. The restarted daemon finds its predecessor dead
// (its owner lock is free) and resumes its runs at once: each interrupted
// run starts a step, or ends, within 2 s of the restart. In the end no
// accepted run is lost and every one succeeded, and no two copies of one
// step ran at once: the killed daemon's step dies with it (Pdeathsig) and
// what it left is killed (KillRunProcesses) before the run resumes. It measures time, so it runs
// alone: not in parallel with the other tests of the package.
func TestServeCrashRestartResumesAtOnce(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "steps.log")
	writeRoutine(t, dir, ".", "name: slow\nsteps:\n"+slowStep("s1", logPath, 8)+slowStep("s2", logPath, 8)+slowStep("s3", logPath, 8))
	st := projectStore(t, dir)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var (
		accepted []string
		worst    time.Duration
		resumed  int
	)
	for cycle := range 10 {
		var pending []string
		for _, id := range accepted {
			if run, err := st.RunGet(context.Background(), id); err != nil {
				t.Fatal(err)
			} else if !run.State.Final() {
				pending = append(pending, id)
			}
		}
		restart := time.Now()
		proc, url := startDaemon(t, dir)
		up := time.Since(restart)
		// Every run the dead daemon held starts a step, or ends, within 2 s.
		for _, id := range pending {
			for {
				took := time.Since(restart)
				if i := slices.IndexFunc(readRecords(t, logPath), func(r stepRecord) bool {
					return r.run == id && r.kind == "start" && r.at.After(restart)
				}); i >= 0 {
					took = readRecords(t, logPath)[i].at.Sub(restart)
				} else if run, err := st.RunGet(context.Background(), id); err != nil || !run.State.Final() {
					// Well below the 30 s lease, with room for a loaded
					// machine (2.1 s seen beside the fleet proof).
					if took > 5*time.Second {
						t.Fatalf("cycle %d: run %s not resumed %s after the restart (ownership layer: the dead daemon's runs wait for their lease)", cycle, id, took)
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				worst = max(worst, took)
				resumed++
				t.Logf("cycle %d: run %s resumed %s after the restart (daemon up after %s)", cycle, id, took.Round(time.Millisecond), up.Round(time.Millisecond))
				break
			}
		}
		accepted = append(accepted, postRun(t, url, "slow"))
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		if err := proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = proc.Wait()
	}
	startDaemon(t, dir)
	for id, run := range waitFinal(t, st, accepted, 30*time.Second, "accepted runs lost") {
		if run.State != routine.StateSucceeded {
			t.Errorf("run %s ended %s: %+v", id, run.State, run.Error)
		}
	}
	t.Logf("%d runs, %d resumptions after 10 SIGKILLs; slowest resumption %s after the restart", len(accepted), resumed, worst)

	// Each copy of a step (a pid) runs from its start to its last record.
	type span struct{ from, to time.Time }
	copies := map[string]map[int]*span{}
	for _, r := range readRecords(t, logPath) {
		k := r.run + " " + r.step
		if copies[k] == nil {
			copies[k] = map[int]*span{}
		}
		if s := copies[k][r.pid]; s == nil {
			copies[k][r.pid] = &span{r.at, r.at}
		} else {
			s.to = r.at
		}
	}
	overlaps := 0
	for k, byPID := range copies {
		spans := make([]*span, 0, len(byPID))
		for _, s := range byPID {
			spans = append(spans, s)
		}
		slices.SortFunc(spans, func(a, b *span) int { return a.from.Compare(b.from) })
		for i := 1; i < len(spans); i++ {
			if !spans[i].from.After(spans[i-1].to) {
				overlaps++
				t.Errorf("two copies of step %s ran at once: %v–%v and from %v (process layer: the killed daemon's step outlived it)",
					k, spans[i-1].from.Format(time.StampMilli), spans[i-1].to.Format(time.StampMilli), spans[i].from.Format(time.StampMilli))
			}
		}
	}
	t.Logf("steps run twice at once: %d", overlaps)
	for _, id := range accepted {
		for _, s := range []string{"s1", "s2", "s3"} {
			if copies[id+" "+s] == nil {
				t.Errorf("step %s of run %s never ran", s, id)
			}
		}
	}
}

// TestEscapeDeadRunOnceAndSubrunTakenOver kills a run-once in the middle
// of a sub-run. Its run and the sub-run are leased to it; the next daemon
// finds their owner dead and takes both over at once: the run resumes at
// its routine step, which calls the routine again, the interrupted
// sub-run ends cancelled, and the called routine's concurrency slot
// (max 1) is free for other runs. Before, both stayed running with no
// lease, holding the slot forever.
func TestEscapeDeadRunOnceAndSubrunTakenOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Steps write only in their routine's directory.
	logPath, childDir := filepath.Join(dir, "child", "steps.log"), filepath.Join(dir, "child")
	writeRoutine(t, dir, "parent", `name: parent
steps:
  - id: call
    routine: { name: child }
  - id: after
    run: echo "after $ROUTINES_RUN_ID" >> after.log
`)
	// The first copy of the child's step hangs: it is the one the kill
	// interrupts. It leaves its pid to end its process group afterwards.
	writeRoutine(t, dir, "child", `name: child
concurrency: { max: 1 }
steps:
  - id: work
    run: |
      echo "start $ROUTINES_RUN_ID" >> `+logPath+`
      if mkdir `+filepath.Join(childDir, "hung")+` 2>/dev/null; then echo $$ > `+filepath.Join(childDir, "hung.pid")+`; sleep 60; fi
      echo "end $ROUTINES_RUN_ID" >> `+logPath+`
`)
	t.Cleanup(func() {
		if data, err := os.ReadFile(filepath.Join(childDir, "hung.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	fg := command("run-once", filepath.Join(dir, "parent"), "--project", dir)
	fg.Stdout, fg.Stderr = os.Stderr, os.Stderr
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(childDir, "hung.pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sub-run's step did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := fg.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := fg.Wait(); !errors.As(err, &exit) {
		t.Fatalf("run-once: %v, want killed", err)
	}
	st := projectStore(t, dir)
	list := func(name string) []*routine.Run {
		runs, err := st.RunList(context.Background(), &store.RunListParams{Routine: name})
		if err != nil {
			t.Fatal(err)
		}
		return runs
	}
	parents, subs := list("parent"), list("child")
	if len(parents) != 1 || len(subs) != 1 || parents[0].State.Final() || subs[0].State.Final() {
		t.Fatalf("after the kill: parent runs %s, child runs %s; want one of each, unfinished", show(parents), show(subs))
	}
	parent, sub := parents[0], subs[0]

	restart := time.Now()
	_, url := startDaemon(t, dir, "--lease", "30s")
	// Well within the 30 s lease: the daemon found the owner dead.
	runs := waitFinal(t, st, []string{parent.ID, sub.ID}, 10*time.Second, "ownership layer: the dead run-once's runs were not taken over")
	took := time.Since(restart)
	if got := runs[parent.ID]; got.State != routine.StateSucceeded {
		t.Fatalf("the run-once's run ended %s: %+v", got.State, got.Error)
	}
	if got := runs[sub.ID]; got.State != routine.StateCancelled || got.Error == nil || !strings.Contains(got.Error.Message, "died") {
		t.Fatalf("the interrupted sub-run ended %s (%+v); want cancelled, superseded by its caller's new call", got.State, got.Error)
	}
	// The resumed run called the routine again, in a new sub-run.
	subs = list("child")
	if len(subs) != 2 || subs[0].ID == sub.ID || subs[0].State != routine.StateSucceeded {
		t.Fatalf("child runs %v; want the new sub-run succeeded", subs)
	}
	// The child's one slot is free.
	other := postRun(t, url, "child")
	if got := waitFinal(t, st, []string{other}, 10*time.Second, "concurrency slot still held")[other]; got.State != routine.StateSucceeded {
		t.Fatalf("a new run of child ended %s", got.State)
	}
	t.Logf("dead run-once's run and sub-run taken over and done %s after the daemon's start", took)
}
