package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// leaseBundle is a store holding one run, running under owner's lease of
// a minute from start, and a virtual clock at start: the machine's time,
// so a lease judged by the machine's clock would not expire during a test.
type leaseBundle struct {
	st    *sqlite.Store
	clk   *clock.Virtual
	start time.Time
	run   string
	ctx   context.Context
}

const testLease = time.Minute

func setupLease(t *testing.T, owner string) *leaseBundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	start := time.Now().UTC()
	run, err := st.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "work",
		State: routine.StateRunning, QueuedAt: start, Worker: owner, Lease: testLease})
	if err != nil {
		t.Fatal(err)
	}
	return &leaseBundle{st: st, clk: clock.NewVirtual(start), start: start, run: run.ID, ctx: ctx}
}

// armed waits until a timer due at is armed on the clock.
func (b *leaseBundle) armed(t *testing.T, at time.Time) {
	t.Helper()
	for {
		got, err := b.clk.WaitArmed(b.ctx)
		if err != nil {
			t.Fatalf("no timer armed for %s: %v", at, err)
		}
		if got.Equal(at) {
			return
		}
	}
}

// claim claims the run for worker at d after start, and reports whether
// it got it.
func (b *leaseBundle) claim(t *testing.T, worker string, d time.Duration) bool {
	t.Helper()
	runs, err := b.st.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: b.start.Add(d), Lease: testLease})
	if err != nil {
		t.Fatal(err)
	}
	return len(runs) == 1
}

// The heartbeat renews a held run's lease every Lease/3 of the clock, and
// no longer once the run is released.
func TestLeasesRenewOnTheClock(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "w")
	l := scheduler.NewLeases(b.st, "w", testLease, b.clk, nil)
	_, release := l.Hold(context.Background(), b.run)
	l.Start(nil)
	t.Cleanup(l.Stop)
	third := testLease / 3
	b.armed(t, b.start.Add(third))
	b.clk.Set(b.start.Add(third))
	b.armed(t, b.start.Add(2*third)) // renewed at 20s, until 80s
	if b.claim(t, "other", testLease+time.Second) {
		t.Fatal("a held run's lease expired at its first end: no heartbeat")
	}
	release()
	b.clk.Set(b.start.Add(2 * third)) // nothing held: not renewed
	b.armed(t, b.start.Add(3*third))
	if !b.claim(t, "other", third+testLease+time.Second) {
		t.Fatal("a released run's lease was renewed")
	}
}

// A run whose owner stopped renewing its lease (on another machine, no
// Liveness knows it) is taken over once its lease has expired on the
// scheduler's clock.
func TestTakeOverExpiredLeaseOnTheClock(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "elsewhere")
	exec := &executor{st: b.st, done: make(chan string, 1)}
	s := scheduler.New(scheduler.Config{
		Store: b.st, Executor: exec, Catalog: scheduler.NewCatalog([]*routine.Routine{{Name: "work"}}),
		Worker: "test:1", Lease: testLease, Poll: 10 * time.Second, Clock: b.clk,
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	b.armed(t, b.start.Add(10*time.Second)) // the first poll is over
	b.clk.Set(b.start.Add(testLease + time.Second))
	select {
	case id := <-exec.done:
		if id != b.run {
			t.Fatalf("executed %s, want %s", id, b.run)
		}
	case <-b.ctx.Done():
		t.Fatal("the run was not taken over once its lease expired on the clock")
	}
}

// unreachable fails heartbeats, as a store that is down does.
type unreachable struct{ store.Store }

func (unreachable) RunHeartbeat(context.Context, *store.RunHeartbeatParams) (*store.Heartbeat, error) {
	return nil, errors.New("connection refused")
}

// blocking executes a run until released, counting the executions of
// each run.
type blocking struct {
	st      store.Store
	mu      sync.Mutex
	started map[string]int
	began   chan string // each execution's run, as it begins
	release chan struct{}
}

func (e *blocking) Execute(ctx context.Context, _ *routine.Routine, run *routine.Run) (*routine.Run, error) {
	e.mu.Lock()
	e.started[run.ID]++
	e.mu.Unlock()
	e.began <- run.ID
	<-e.release
	run.State = routine.StateSucceeded
	return run, e.st.RunUpdate(ctx, run)
}

// signal is a log handler that closes a channel at the first record of a
// message.
type signal struct {
	slog.Handler
	msg  string
	once sync.Once
	ch   chan struct{}
}

func (s *signal) Enabled(context.Context, slog.Level) bool { return true }

func (s *signal) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == s.msg {
		s.once.Do(func() { close(s.ch) })
	}
	return nil
}

// A run whose lease ran out while this owner executes it (its heartbeats
// failed: the store was unreachable) is claimed back by this owner, which
// renews the lease: the execution goes on, and no second one starts.
func TestOwnExpiredLeaseNotExecutedTwice(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "elsewhere")
	mine, err := b.st.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "mine", QueuedAt: b.start})
	if err != nil {
		t.Fatal(err)
	}
	exec := &blocking{st: b.st, started: map[string]int{}, began: make(chan string, 10), release: make(chan struct{})}
	sig := &signal{Handler: slog.DiscardHandler, msg: "lease ran out on a run executing here; renewed by a claim, the execution goes on", ch: make(chan struct{})}
	s := scheduler.New(scheduler.Config{
		Store: unreachable{b.st}, Executor: exec, Catalog: scheduler.NewCatalog([]*routine.Routine{{Name: "work"}, {Name: "mine"}}),
		Worker: "test:1", Lease: testLease, Poll: 10 * time.Second, Clock: b.clk, Logger: slog.New(sig),
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	var once sync.Once
	release := func() { once.Do(func() { close(exec.release) }) }
	t.Cleanup(release)
	select {
	case <-exec.began: // the queued run, claimed at the start: elsewhere's lease holds
	case <-b.ctx.Done():
		t.Fatal("the queued run did not start")
	}
	b.armed(t, b.start.Add(10*time.Second)) // the poll sleeps
	b.clk.Set(b.start.Add(2*testLease + time.Second))
	select {
	case <-sig.ch:
	case <-b.ctx.Done():
		t.Fatal("this owner's runs, their leases run out, were not claimed back")
	}
	exec.mu.Lock()
	n := exec.started[mine.ID]
	exec.mu.Unlock()
	if n != 1 {
		t.Fatalf("the run was executed %d times, want once", n)
	}
}
