package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// flakyKind is a "run" kind whose step "b" fails its first two tries; it
// counts the tries of every step, and when each began on the engine's
// clock.
type flakyKind struct {
	mu    sync.Mutex
	tries map[string]int
	times map[string][]time.Time
}

func (k *flakyKind) Name() string { return "run" }

func (k *flakyKind) Execute(_ context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := x.Routine + "/" + x.StepID
	k.tries[key]++
	k.times[key] = append(k.times[key], x.Now())
	if x.StepID == "b" && k.tries[key] <= 2 {
		return &stepkind.Result{}, errors.New("not yet")
	}
	return &stepkind.Result{}, nil
}

// flakyYAML is a routine whose step b (of flakyKind) retries after the
// constant backoff initial, a step a before it.
func flakyYAML(initial string) string {
	return `name: flaky
steps:
  - id: a
    run: "true"
  - id: b
    run: "false"
    retry: { attempts: 3, backoff: constant, initial: ` + initial + `, jitter: false }
`
}

// setupRequeue opens a store in a new directory and parses the routine
// files there.
func setupRequeue(t *testing.T, files ...string) (*sqlite.Store, string, []*routine.Routine) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rs []*routine.Routine
	for _, f := range files {
		r, err := spec.Parse("routine.yaml", []byte(f), dir)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return st, dir, rs
}

func TestLongBackoffRequeuesTheRunAndFreesTheWorker(t *testing.T) {
	t.Parallel()
	st, dir, rs := setupRequeue(t, flakyYAML("400ms"), "name: quick\nsteps:\n  - id: q\n    run: \"true\"\n")
	flaky, quick := rs[0], rs[1]
	kind := &flakyKind{tries: map[string]int{}, times: map[string][]time.Time{}}
	s := scheduler.New(scheduler.Config{
		Store: st,
		Executor: engine.New(engine.Config{
			Store: st, Kinds: stepkind.NewRegistry(kind), StateDir: dir,
			RequeueAfter: 100 * time.Millisecond,
		}),
		Catalog: scheduler.NewCatalog([]*routine.Routine{flaky, quick}),
		Worker:  "test:1", Workers: 1, Lease: time.Minute,
		Poll: time.Hour, // the requeued run must be woken when it comes due
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	ctx := context.Background()
	run, err := enqueue(ctx, st, s, flaky)
	if err != nil {
		t.Fatal(err)
	}
	// Once b failed its first try, the run waits in the queue, not on the worker.
	var waiting *routine.Run
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if waiting, err = st.RunGet(ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		if waiting.State == routine.StateQueued && waiting.Attempt == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not requeued: %+v", waiting)
		}
	}
	// The only worker is free: another routine's run goes through meanwhile.
	other, err := enqueue(ctx, st, s, quick)
	if err != nil {
		t.Fatal(err)
	}
	final := func(id string) *routine.Run {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got, err := st.RunGet(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.State.Final() {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s not final: %+v", id, got)
			}
		}
	}
	q := final(other.ID)
	f := final(run.ID)
	if q.State != routine.StateSucceeded || f.State != routine.StateSucceeded {
		t.Fatalf("states: quick %s, flaky %s (%+v)", q.State, f.State, f.Error)
	}
	if !q.FinishedAt.Before(*f.FinishedAt) {
		t.Errorf("quick finished %s, after flaky %s: the worker was held", q.FinishedAt, f.FinishedAt)
	}
	if f.Attempt != 3 {
		t.Errorf("flaky ran in %d attempts of the run, want 3 (two requeues)", f.Attempt)
	}
	kind.mu.Lock()
	defer kind.mu.Unlock()
	if kind.tries["flaky/a"] != 1 || kind.tries["flaky/b"] != 3 {
		t.Errorf("tries: %v; a must not run again, b three times", kind.tries)
	}
	bt := kind.times["flaky/b"]
	for i := 1; i < len(bt); i++ {
		if gap := bt[i].Sub(bt[i-1]); gap < 400*time.Millisecond {
			t.Errorf("try %d of b came %s after the one before, before its backoff", i+1, gap)
		}
	}
	recs, err := st.StepList(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == "b" && (r.Attempts != 3 || r.State != routine.StateSucceeded) {
			t.Errorf("step b: %d attempts, %s", r.Attempts, r.State)
		}
	}
	if _, err := st.RunCount(ctx, &store.RunCountParams{}); err != nil {
		t.Fatal(err)
	}
}

// A retry an hour away waits in the queue on the scheduler's clock: on a
// virtual clock, the requeued run is claimed again once the clock is
// moved to its retry (the wake-up armed for it fires; the poll is a day
// away), with nothing waited for.
func TestRequeuedRunComesDueOnTheClock(t *testing.T) {
	t.Parallel()
	st, dir, rs := setupRequeue(t, flakyYAML("1h, max: 1h"))
	r := rs[0]
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(start)
	kind := &flakyKind{tries: map[string]int{}, times: map[string][]time.Time{}}
	s := scheduler.New(scheduler.Config{
		Store: st,
		Executor: engine.New(engine.Config{
			Store: st, Kinds: stepkind.NewRegistry(kind), StateDir: dir, Clock: clk,
			RequeueAfter: time.Minute,
		}),
		Catalog: scheduler.NewCatalog([]*routine.Routine{r}),
		Worker:  "test:1", Workers: 1, Lease: time.Minute, Poll: 24 * time.Hour,
		Clock: clk,
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	run, err := enqueue(ctx, st, s, r)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		// b failed: the run is requeued for an hour from now, and a
		// wake-up armed a millisecond after.
		wake := clk.Now().Add(time.Hour + time.Millisecond)
		for {
			at, err := clk.WaitArmed(ctx)
			if err != nil {
				t.Fatalf("attempt %d: no wake-up armed for %s: %v", attempt, wake, err)
			}
			if at.Equal(wake) {
				break
			}
		}
		got, err := st.RunGet(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != routine.StateQueued || got.Attempt != attempt {
			t.Fatalf("attempt %d: run %s at attempt %d, want queued", attempt, got.State, got.Attempt)
		}
		ended, stop := s.Watch(run.ID)
		clk.Set(wake)
		select {
		case <-ended:
		case <-ctx.Done():
			t.Fatalf("attempt %d: the run was not claimed again at %s", attempt+1, wake)
		}
		stop()
	}
	done, err := st.RunGet(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != routine.StateSucceeded || done.Attempt != 3 {
		t.Fatalf("run %s at attempt %d, want succeeded at 3", done.State, done.Attempt)
	}
	kind.mu.Lock()
	defer kind.mu.Unlock()
	want := []time.Time{start, start.Add(time.Hour + time.Millisecond), start.Add(2 * (time.Hour + time.Millisecond))}
	if got := kind.times["flaky/b"]; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("tries of b began at %v, want %v", got, want)
	}
}

// Without RequeueAfter (run-once) the engine sleeps through the backoff.
func TestBackoffWithoutRequeueSleeps(t *testing.T) {
	t.Parallel()
	st, dir, rs := setupRequeue(t, flakyYAML("50ms"))
	r := rs[0]
	kind := &flakyKind{tries: map[string]int{}, times: map[string][]time.Time{}}
	e := engine.New(engine.Config{Store: st, Kinds: stepkind.NewRegistry(kind), StateDir: dir})
	run, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: "01SLEEPS0000000000000000000", Routine: r.Name, Revision: r.Revision, QueuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Execute(context.Background(), r, run)
	if err != nil || done.State != routine.StateSucceeded || done.Attempt != 1 {
		t.Fatalf("execute: %v %+v", err, done)
	}
}
