package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseCancel(t *testing.T, open func(t *testing.T) store.Store) {
	const msg = "cancelled through the API"
	cancel := func(t *testing.T, b *testBundle, id string) *routine.Run {
		t.Helper()
		run, err := b.s.RunCancelRequest(b.ctx, &store.RunCancelRequestParams{ID: id, Now: at(time.Minute), Message: msg})
		if err != nil {
			t.Fatalf("RunCancelRequest: %v", err)
		}
		return run
	}
	heartbeat := func(t *testing.T, b *testBundle, worker string) *store.Heartbeat {
		t.Helper()
		hb, err := b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: worker, Now: at(time.Minute), Lease: lease})
		if err != nil {
			t.Fatalf("RunHeartbeat: %v", err)
		}
		return hb
	}

	t.Run("QueuedEndsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		id := b.queue(t, "r", 0)
		run := cancel(t, b, id)
		want := routine.ErrorPayload{Code: routine.CodeCancelled, Message: msg, RunID: id}
		if run.State != routine.StateCancelled || run.FinishedAt == nil || !run.FinishedAt.Equal(stored(at(time.Minute))) ||
			run.Error == nil || *run.Error != want {
			t.Fatalf("cancelled queued run = %s; want cancelled at once with %+v", show(run), want)
		}
		if got := b.getRun(t, id); got.State != routine.StateCancelled {
			t.Fatalf("stored run = %s; want cancelled", show(got))
		}
		if got := b.claim(t, "w", at(time.Hour)); got != "" {
			t.Fatalf("claimed %s, a cancelled run", got)
		}
	})

	t.Run("QueuedForARetryEndsWithItsSteps", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		id := b.queue(t, "r", 0)
		b.claim(t, "w", epoch)
		started := at(time.Second)
		for _, st := range []*routine.StepRun{
			{RunID: id, ID: "done", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded, Attempts: 1, StartedAt: &started, FinishedAt: &started},
			{RunID: id, ID: "waits", Phase: routine.PhaseMain, Kind: "run", State: routine.StateQueued, Attempts: 2, StartedAt: &started},
		} {
			if err := b.s.StepSave(b.ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		notBefore := at(time.Hour)
		if err := b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: id, Worker: "w", NotBefore: &notBefore}); err != nil {
			t.Fatal(err)
		}
		if run := cancel(t, b, id); run.State != routine.StateCancelled {
			t.Fatalf("cancel of a run waiting for a retry = %s; want cancelled", show(run))
		}
		steps, err := b.s.StepList(b.ctx, id)
		if err != nil || len(steps) != 2 || steps[0].State != routine.StateSucceeded || steps[1].State != routine.StateCancelled ||
			steps[1].FinishedAt == nil || !steps[1].FinishedAt.Equal(stored(at(time.Minute))) {
			t.Fatalf("steps = %+v, %v; want the waiting one cancelled, the other as it was", steps, err)
		}
	})

	t.Run("RunningToldToItsHolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		id, other := b.queue(t, "r", 0), b.queue(t, "r", time.Second)
		b.claim(t, "w1", epoch)
		b.claim(t, "w1", epoch)
		w, ok := b.s.(store.Waker)
		if !ok {
			t.Fatalf("%T does not implement store.Waker", b.s)
		}
		ch := w.CancelWakeups(b.ctx)
		WaitWake(t, ch, "subscribing")
		if hb := heartbeat(t, b, "w1"); len(hb.Renewed) != 2 || len(hb.Cancel) != 0 {
			t.Fatalf("heartbeat before the request = %+v; want 2 renewed, none to cancel", hb)
		}
		run := cancel(t, b, id)
		if run.State != routine.StateRunning || run.FinishedAt != nil || run.Error != nil || run.Worker != "w1" {
			t.Fatalf("cancel of a running run = %s; want it still running, held by w1", show(run))
		}
		WaitWake(t, ch, "a cancel request")
		if hb := heartbeat(t, b, "w1"); !slices.Equal(hb.Cancel, []string{id}) || len(hb.Renewed) != 2 {
			t.Fatalf("heartbeat after the request = %+v; want 2 renewed, %s to cancel", hb, id)
		}
		// Asked again: the same; the other run is untouched.
		if run := cancel(t, b, id); run.State != routine.StateRunning {
			t.Fatalf("second request = %s; want running", show(run))
		}
		if hb, err := b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "w1", IDs: []string{other}, Now: at(time.Minute), Lease: lease}); err != nil || len(hb.Cancel) != 0 {
			t.Fatalf("heartbeat of the other run = %+v, %v; want nothing to cancel", hb, err)
		}
	})

	t.Run("RequestOutlivesItsHolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		id := b.queue(t, "r", 0)
		b.claim(t, "w1", epoch)
		cancel(t, b, id)
		// The worker that claims it next is told to cancel it.
		claimedToCancel := func(worker, after string) {
			t.Helper()
			if got := b.claim(t, worker, at(lease)); got != id {
				t.Fatalf("claimed %q %s, want %s", got, after, id)
			}
			if hb := heartbeat(t, b, worker); !slices.Equal(hb.Cancel, []string{id}) {
				t.Fatalf("heartbeat of %s %s = %+v; want %s to cancel", worker, after, hb, id)
			}
		}
		claimedToCancel("w2", "once w1 died") // the lease of w1 expired
		// Put back in the queue (a retry's wait), it keeps it too.
		if err := b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: id, Worker: "w2"}); err != nil {
			t.Fatal(err)
		}
		claimedToCancel("w3", "after a requeue")
	})

	t.Run("EndedLeftAlone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		id := b.queue(t, "r", 0)
		b.claim(t, "w", epoch)
		b.finish(t, id)
		if run := cancel(t, b, id); run.State != routine.StateSucceeded || run.Error != nil {
			t.Fatalf("cancel of an ended run = %s; want it succeeded as it was", show(run))
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if _, err := b.s.RunCancelRequest(b.ctx, &store.RunCancelRequestParams{ID: newID(), Now: epoch, Message: msg}); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("RunCancelRequest of a missing run: %v; want ErrNotFound", err)
		}
	})
}
