package scheduler_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// executor finishes runs after a delay, records how many ran at once and
// signals each finished run.
type executor struct {
	st    store.Store
	delay time.Duration
	done  chan string

	mu          sync.Mutex
	running, hi int
}

func (e *executor) Execute(ctx context.Context, _ *routine.Routine, run *routine.Run) (*routine.Run, error) {
	e.mu.Lock()
	e.running++
	e.hi = max(e.hi, e.running)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running--
		e.mu.Unlock()
	}()
	run.State = routine.StateSucceeded
	select {
	case <-time.After(e.delay):
	case <-ctx.Done():
		run.State = routine.StateCancelled
	}
	now := time.Now()
	run.FinishedAt = &now
	if err := e.st.RunUpdate(context.Background(), run); err != nil {
		return nil, err
	}
	e.done <- run.ID
	return run, nil
}

type testBundle struct {
	st   *sqlite.Store
	exec *executor
}

func setup(t *testing.T, delay time.Duration, rs ...*routine.Routine) (*scheduler.Scheduler, *testBundle) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	exec := &executor{st: st, delay: delay, done: make(chan string, 100)}
	s := scheduler.New(scheduler.Config{
		Store: st, Executor: exec, Catalog: scheduler.NewCatalog(rs),
		Worker: "test:1", Workers: 4, Lease: time.Minute,
		Poll: time.Hour, // only wake-ups may start runs in these tests
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, &testBundle{st: st, exec: exec}
}

func TestEnqueueWakesAWorkerAtOnce(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "fast"}
	s, b := setup(t, 0, r)
	for range 3 {
		start := time.Now()
		run, err := enqueue(context.Background(), b.st, s, r)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-b.exec.done:
			if id != run.ID {
				t.Fatalf("ran %s, want %s", id, run.ID)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("queued run did not start without polling")
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("enqueue to done took %s", took)
		}
	}
}

func TestCeilingHoldsAndReleases(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "one", Concurrency: &routine.Concurrency{Max: 1}}
	other := &routine.Routine{Name: "other"}
	s, b := setup(t, 50*time.Millisecond, r, other)
	for range 3 {
		if _, err := enqueue(context.Background(), b.st, s, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := enqueue(context.Background(), b.st, s, other); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		select {
		case <-b.exec.done:
		case <-time.After(5 * time.Second):
			t.Fatal("runs held back past their turn")
		}
	}
	b.exec.mu.Lock()
	defer b.exec.mu.Unlock()
	if b.exec.hi > 2 { // one of "one" and one of "other" at most
		t.Errorf("%d runs at once, want at most 2", b.exec.hi)
	}
}

// A run of a routine the catalog lost fails without the executor, and
// OnEnd hears of it (the executor's observers never do).
func TestUnknownRoutineFails(t *testing.T) {
	t.Parallel()
	other, b := setup(t, 0)
	other.Shutdown(context.Background()) // this one claims, with OnEnd
	ended := make(chan *routine.Run, 1)
	s := scheduler.New(scheduler.Config{Store: b.st, Executor: b.exec, Catalog: scheduler.NewCatalog(nil), Worker: "test:2",
		OnEnd: func(run *routine.Run) { ended <- run }})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	run, err := enqueue(context.Background(), b.st, s, &routine.Routine{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ended:
		if e.ID != run.ID || e.State != routine.StateFailed {
			t.Fatalf("OnEnd heard of %s %s, want %s failed", e.ID, e.State, run.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnEnd not called for the run failed by the scheduler")
	}
	got, err := b.st.RunGet(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != routine.StateFailed || got.Error == nil || got.Error.Code != routine.CodeInvalidRoutine {
		t.Fatalf("run %s with %+v, want failed with invalid_routine", got.State, got.Error)
	}
}

func TestShutdownRequeuesRunsPastGrace(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "slow"}
	s, b := setup(t, time.Hour, r)
	run, err := enqueue(context.Background(), b.st, s, r)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got, err := b.st.RunGet(context.Background(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == routine.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run not claimed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.Shutdown(ctx)
	got, err := b.st.RunGet(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != routine.StateQueued || got.FinishedAt != nil || got.Error != nil {
		t.Fatalf("after shutdown: %s %v %v", got.State, got.FinishedAt, got.Error)
	}
}

// enqueue queues a run of r for an API call, through a queue that wakes s.
func enqueue(ctx context.Context, st store.Store, s *scheduler.Scheduler, r *routine.Routine) (*routine.Run, error) {
	q := scheduler.NewQueue(st, nil, nil)
	q.OnQueued(s.Wake)
	run, _, err := q.Enqueue(ctx, &scheduler.Request{Routine: r, Trigger: routine.TriggerInfo{Kind: "api"}})
	return run, err
}

// A run another process queued (written straight to the store, which
// tells whoever listens) starts at once, without a poll: the store wakes
// the dispatcher.
func TestStoreWakeUpStartsARunQueuedElsewhere(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "elsewhere"}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	exec := &executor{st: st, done: make(chan string, 1)}
	s := scheduler.New(scheduler.Config{
		Store: st, Executor: exec, Catalog: scheduler.NewCatalog([]*routine.Routine{r}),
		Worker: "test:1", Workers: 1, Lease: time.Minute, Poll: time.Hour, Waker: st,
	})
	// The dispatcher's own wake-ups, at start and after a run, are spent
	// on a first run before the run of the test is queued: only the
	// store's wake-up can start that one.
	if _, err := st.RunCreate(t.Context(), &store.RunCreateParams{ID: "01JWAKEUPFIRST0000000000000", Routine: r.Name, QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Start(t.Context())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	<-exec.done
	time.Sleep(200 * time.Millisecond)
	run, err := st.RunCreate(t.Context(), &store.RunCreateParams{ID: "01JWAKEUPFROMELSEWHERE00000", Routine: r.Name, QueuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-exec.done:
		if id != run.ID {
			t.Fatalf("ran %s, want %s", id, run.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run queued elsewhere did not start: the store's wake-up did not reach the dispatcher")
	}
}
