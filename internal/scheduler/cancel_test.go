package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

// waitCause waits until ctx ends and returns its cause, or fails t after
// what a loaded machine may take.
func waitCause(t *testing.T, ctx context.Context, what string) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the hold's context did not end", what)
		return nil
	}
}

// A cancel requested through the store ends the context of the run's hold
// at once, told by the store's wake-up rather than the next heartbeat,
// which the virtual clock never brings.
func TestLeasesCancelOnRequest(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "w")
	l := scheduler.NewLeases(b.st, "w", testLease, b.clk, nil)
	ctx, release := l.Hold(context.Background(), b.run)
	defer release()
	other, releaseOther := l.Hold(context.Background(), "some-other-run")
	defer releaseOther()
	l.Start(b.st)
	t.Cleanup(l.Stop)
	if _, err := b.st.RunCancelRequest(b.ctx, &store.RunCancelRequestParams{ID: b.run, Now: b.start}); err != nil {
		t.Fatal(err)
	}
	if cause := waitCause(t, ctx, "a cancel request"); !errors.Is(cause, scheduler.ErrCancelRequested) {
		t.Fatalf("cause = %v, want ErrCancelRequested", cause)
	}
	if other.Err() != nil {
		t.Fatalf("the other hold ended too: %v", context.Cause(other))
	}
}

// A run whose lease could not be renewed for a whole lease (the store is
// unreachable) is stopped here, since another worker may take it over:
// not before its lease runs out, and then without waiting for the next
// heartbeat.
func TestLeasesLostStopTheRun(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "w")
	l := scheduler.NewLeases(unreachable{b.st}, "w", testLease, b.clk, nil)
	ctx, release := l.Hold(context.Background(), b.run)
	defer release()
	l.Start(nil)
	t.Cleanup(l.Stop)
	// Held at start: heartbeats at 20s and 40s fail, the lease runs out at 60s.
	for _, d := range []time.Duration{20 * time.Second, 40 * time.Second} {
		b.armed(t, b.start.Add(d))
		b.clk.Set(b.start.Add(d))
	}
	b.armed(t, b.start.Add(testLease))
	if ctx.Err() != nil {
		t.Fatalf("stopped before its lease ran out: %v", context.Cause(ctx))
	}
	b.clk.Set(b.start.Add(testLease))
	if cause := waitCause(t, ctx, "the lease ran out"); !errors.Is(cause, scheduler.ErrLeaseLost) {
		t.Fatalf("cause = %v, want ErrLeaseLost", cause)
	}
}

// A run taken over from a dead owner whose cancel was requested before it
// stopped ends cancelled instead of resuming, its unfinished steps with it.
func TestTakenOverRunCancelledNotResumed(t *testing.T) {
	t.Parallel()
	b := setupLease(t, "elsewhere")
	started := b.start.Add(time.Second)
	if err := b.st.StepSave(b.ctx, &routine.StepRun{RunID: b.run, ID: "sleep", Phase: routine.PhaseMain, Kind: "run",
		State: routine.StateRunning, Attempts: 1, StartedAt: &started}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.RunCancelRequest(b.ctx, &store.RunCancelRequestParams{ID: b.run, Now: started}); err != nil {
		t.Fatal(err)
	}
	exec := &executor{st: b.st, done: make(chan string, 1)}
	killed := make(chan string, 1)
	s := scheduler.New(scheduler.Config{
		Store: b.st, Executor: exec, Catalog: scheduler.NewCatalog([]*routine.Routine{{Name: "work"}}),
		Worker: "test:1", Lease: testLease, Poll: 10 * time.Second, Clock: b.clk,
		KillRunProcesses: func(_ context.Context, id string) error { killed <- id; return nil },
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	b.armed(t, b.start.Add(10*time.Second))
	b.clk.Set(b.start.Add(testLease + time.Second))
	select {
	case <-killed:
	case <-b.ctx.Done():
		t.Fatal("the run was not taken over")
	}
	for {
		run, err := b.st.RunGet(b.ctx, b.run)
		if err != nil {
			t.Fatal(err)
		}
		if run.State.Final() {
			if run.State != routine.StateCancelled || run.Error == nil || run.Error.Message != "cancelled through the API" {
				t.Fatalf("run ended %s (%+v), want cancelled through the API", run.State, run.Error)
			}
			break
		}
		select {
		case id := <-exec.done:
			t.Fatalf("run %s executed, want it cancelled", id)
		case <-b.ctx.Done():
			t.Fatal("the run did not end")
		case <-time.After(10 * time.Millisecond):
		}
	}
	steps, err := b.st.StepList(b.ctx, b.run)
	if err != nil || len(steps) != 1 || steps[0].State != routine.StateCancelled || steps[0].FinishedAt == nil {
		t.Fatalf("steps = %v, %v; want the unfinished step cancelled", steps, err)
	}
}
