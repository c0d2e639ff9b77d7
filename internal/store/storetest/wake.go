package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// wakeWait bounds the wait for a wake-up: a PostgreSQL notification
// crosses a connection, and the machine may be loaded.
const wakeWait = 10 * time.Second

// WaitWake fails t unless ch receives a wake-up within 10 s, what a
// write's wake-up may take on a loaded machine.
func WaitWake(t *testing.T, ch <-chan struct{}, after string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the channel of wake-ups closed, want a wake-up", after)
		}
	case <-time.After(wakeWait):
		t.Fatalf("%s: no wake-up in %v", after, wakeWait)
	}
}

// drain takes a wake-up ch holds, if any, so that the next one is a
// new write's.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// wakeups subscribes to the wake-ups of b's store and waits for the first,
// which says that the channel hears writes.
func (b *testBundle) wakeups(t *testing.T, ctx context.Context) <-chan struct{} {
	t.Helper()
	w, ok := b.s.(store.Waker)
	if !ok {
		t.Fatalf("%T does not implement store.Waker", b.s)
	}
	ch := w.Wakeups(ctx)
	WaitWake(t, ch, "subscribing")
	return ch
}

func exerciseWake(t *testing.T, open func(t *testing.T) store.Store) {
	// Each write that may make a run claimable wakes the listeners.
	for _, tc := range []struct {
		name string
		// setup makes what the write needs, and returns the write.
		setup func(t *testing.T, b *testBundle) func() error
	}{
		{"CreateQueued", func(t *testing.T, b *testBundle) func() error {
			return func() error {
				_, err := b.s.RunCreate(b.ctx, &store.RunCreateParams{ID: newID(), Routine: "r", QueuedAt: epoch})
				return err
			}
		}},
		{"CreateDeduped", func(t *testing.T, b *testBundle) func() error {
			return func() error {
				until := at(time.Minute)
				_, _, err := b.s.RunCreateDeduped(b.ctx, &store.RunCreateParams{ID: newID(), Routine: "r", QueuedAt: epoch,
					DedupeKey: "k", DedupeUntil: &until})
				return err
			}
		}},
		{"Requeue", func(t *testing.T, b *testBundle) func() error {
			id := b.queue(t, "r", 0)
			if got := b.claim(t, "w", epoch); got != id {
				t.Fatalf("claimed %q, want %s", got, id)
			}
			return func() error { return b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: id, Worker: "w"}) }
		}},
		{"UpdateEnds", func(t *testing.T, b *testBundle) func() error {
			run := b.createRun(t, func(p *store.RunCreateParams) { p.State = routine.StateRunning })
			return func() error {
				run.State = routine.StateSucceeded
				return b.s.RunUpdate(b.ctx, run)
			}
		}},
		{"CheckpointEnds", func(t *testing.T, b *testBundle) func() error {
			run := b.createRun(t, func(p *store.RunCreateParams) { p.State, p.Worker, p.Lease = routine.StateRunning, "w", lease })
			return func() error {
				run.State = routine.StateFailed
				return b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: run})
			}
		}},
		{"CheckpointEndsUnderCeiling", func(t *testing.T, b *testBundle) func() error {
			id := b.queue(t, "r", 0)
			if got := b.claim(t, "w", epoch, "r", 1); got != id {
				t.Fatalf("claimed %q, want %s", got, id)
			}
			return func() error {
				run := b.getRun(t, id)
				run.State = routine.StateSucceeded
				return b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: run})
			}
		}},
		{"Expire", func(t *testing.T, b *testBundle) func() error {
			b.createRun(t, func(p *store.RunCreateParams) { p.State, p.Worker, p.Lease = routine.StateRunning, "dead", lease })
			return func() error {
				_, err := b.s.RunExpire(b.ctx, &store.RunExpireParams{Worker: "dead", Now: epoch})
				return err
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, open)
			ch := b.wakeups(t, b.ctx)
			write := tc.setup(t, b)
			// A setup that queued a run woke the channel: that wake-up
			// is not the write's.
			time.Sleep(10 * time.Millisecond)
			drain(ch)
			if err := write(); err != nil {
				t.Fatal(err)
			}
			WaitWake(t, ch, tc.name)
		})
	}

	t.Run("ClosesWithContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		ctx, cancel := context.WithCancel(b.ctx)
		ch := b.wakeups(t, ctx)
		other := b.wakeups(t, b.ctx)
		cancel()
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("a wake-up after the context ended, want the channel closed")
			}
		case <-time.After(wakeWait):
			t.Fatal("the channel did not close when its context ended")
		}
		// The other channel hears on.
		b.queue(t, "r", 0)
		WaitWake(t, other, "create after another channel closed")
	})
}
