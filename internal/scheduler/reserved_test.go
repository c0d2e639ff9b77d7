package scheduler_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

// perRoutine finishes runs after a delay and records, per routine, the
// most runs that executed at once and when each run started.
type perRoutine struct {
	st    store.Store
	delay time.Duration
	done  chan string

	mu      sync.Mutex
	running map[string]int
	hi      map[string]int
	started map[string]time.Time
}

func (e *perRoutine) Execute(ctx context.Context, _ *routine.Routine, run *routine.Run) (*routine.Run, error) {
	e.mu.Lock()
	e.running[run.Routine]++
	e.hi[run.Routine] = max(e.hi[run.Routine], e.running[run.Routine])
	e.started[run.ID] = time.Now()
	e.mu.Unlock()
	select {
	case <-time.After(e.delay):
	case <-ctx.Done():
	}
	// Not running any more before the store says so: from then on, a
	// claim may take its slot.
	e.mu.Lock()
	e.running[run.Routine]--
	e.mu.Unlock()
	run.State = routine.StateSucceeded
	now := time.Now()
	run.FinishedAt = &now
	if err := e.st.RunUpdate(context.Background(), run); err != nil {
		return nil, err
	}
	e.done <- run.ID
	return run, nil
}

// newPerRoutine returns an executor whose runs take delay.
func newPerRoutine(st store.Store, delay time.Duration) *perRoutine {
	return &perRoutine{st: st, delay: delay, done: make(chan string, 100),
		running: map[string]int{}, hi: map[string]int{}, started: map[string]time.Time{}}
}

// wait waits until n runs finished.
func (e *perRoutine) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			t.Fatal("runs did not finish")
		}
	}
}

func TestReservedWorkersStayFree(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	a := &routine.Routine{Name: "a", Concurrency: &routine.Concurrency{Reserved: 1}}
	b := &routine.Routine{Name: "b"}
	exec := newPerRoutine(st, 30*time.Millisecond)
	s := scheduler.New(scheduler.Config{
		Store: st, Executor: exec, Catalog: scheduler.NewCatalog([]*routine.Routine{a, b}),
		Worker: "test:1", Workers: 2, Lease: time.Minute, Poll: time.Hour,
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx := context.Background()
	const flood = 20
	for range flood {
		if _, err := enqueue(ctx, st, s, b); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the flood is being worked
	var aRuns []string
	for range 3 {
		run, err := enqueue(ctx, st, s, a)
		if err != nil {
			t.Fatal(err)
		}
		aRuns = append(aRuns, run.ID)
	}
	exec.wait(t, flood+len(aRuns))
	exec.mu.Lock()
	defer exec.mu.Unlock()
	if exec.hi["b"] != 1 {
		t.Errorf("b ran %d at once on 2 workers with 1 reserved for a, want 1", exec.hi["b"])
	}
	// The first run of a starts on the reserved worker, ahead of the b
	// runs queued before it (which, FIFO, would all start first on a
	// worker that was not kept free).
	if !exec.started[aRuns[0]].Before(lastStart(exec.started, aRuns...)) {
		t.Errorf("a started after the b runs queued before it: it waited for them, not on its reserved worker")
	}
}

// lastStart is when the last run in started but those of skip started.
func lastStart(started map[string]time.Time, skip ...string) time.Time {
	var last time.Time
	for id, at := range started {
		if !slices.Contains(skip, id) && at.After(last) {
			last = at
		}
	}
	return last
}
