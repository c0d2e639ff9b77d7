package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseDedupe(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("FoldsInsideWindow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		first, dup := b.createDeduped(t, "r", "host-a", 0, time.Minute)
		if dup {
			t.Fatal("first run: deduplicated = true, want false")
		}
		second, dup := b.createDeduped(t, "r", "host-a", 30*time.Second, time.Minute)
		if !dup || second.ID != first.ID {
			t.Fatalf("inside the window: got run %s deduplicated=%v, want run %s deduplicated=true", second.ID, dup, first.ID)
		}
		// The window is the first run's: a duplicate does not extend it.
		third, dup := b.createDeduped(t, "r", "host-a", time.Minute, time.Minute)
		if dup || third.ID == first.ID {
			t.Fatalf("at the end of the window: got run %s deduplicated=%v, want a new run", third.ID, dup)
		}
		fourth, dup := b.createDeduped(t, "r", "host-a", time.Minute+time.Second, time.Minute)
		if !dup || fourth.ID != third.ID {
			t.Fatalf("inside the new window: got run %s deduplicated=%v, want run %s", fourth.ID, dup, third.ID)
		}
		runs, err := b.s.RunList(b.ctx, &store.RunListParams{Routine: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 2 {
			t.Fatalf("%d runs stored, want 2", len(runs))
		}
	})
	t.Run("KeysAndRoutinesIndependent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a, _ := b.createDeduped(t, "r", "k1", 0, time.Minute)
		for _, c := range []struct{ routine, key string }{{"r", "k2"}, {"other", "k1"}} {
			run, dup := b.createDeduped(t, c.routine, c.key, time.Second, time.Minute)
			if dup || run.ID == a.ID {
				t.Errorf("%s/%s: deduplicated=%v into %s, want a run of its own", c.routine, c.key, dup, run.ID)
			}
		}
	})
	t.Run("NoKeyNoDedupe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for i := range 2 {
			p := &store.RunCreateParams{ID: newID(), Routine: "r", Trigger: routine.TriggerInfo{Kind: "event"}, QueuedAt: at(time.Duration(i) * time.Second)}
			if _, dup, err := b.s.RunCreateDeduped(b.ctx, p); err != nil || dup {
				t.Fatalf("RunCreateDeduped without a key: deduplicated=%v err=%v", dup, err)
			}
		}
		// A plain RunCreate with a key is a run later ones fold into.
		until := at(time.Minute)
		plain := b.createRun(t, func(p *store.RunCreateParams) { p.DedupeKey, p.DedupeUntil = "k", &until })
		run, dup := b.createDeduped(t, "r", "k", time.Second, time.Minute)
		if !dup || run.ID != plain.ID {
			t.Fatalf("after RunCreate with a key: got %s deduplicated=%v, want %s", run.ID, dup, plain.ID)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const n = 8
		ids := make([]string, n)
		dups := make([]bool, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				until := at(time.Minute)
				run, dup, err := b.s.RunCreateDeduped(b.ctx, &store.RunCreateParams{
					ID: newID(), Routine: "r", Trigger: routine.TriggerInfo{Kind: "event", Payload: []byte(`{}`)},
					QueuedAt: epoch, DedupeKey: "same", DedupeUntil: &until,
				})
				if err != nil {
					t.Errorf("RunCreateDeduped: %v", err)
					return
				}
				ids[i], dups[i] = run.ID, dup
			})
		}
		wg.Wait()
		created := 0
		for i := range n {
			if !dups[i] {
				created++
			}
			if ids[i] != ids[0] {
				t.Errorf("goroutine %d got run %s, goroutine 0 run %s", i, ids[i], ids[0])
			}
		}
		if created != 1 {
			t.Errorf("%d goroutines created a run, want exactly 1", created)
		}
		runs, err := b.s.RunList(b.ctx, &store.RunListParams{Routine: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 {
			t.Errorf("%d runs stored, want 1", len(runs))
		}
	})
}

// createDeduped creates a run of routine with the dedupe key, queued at
// epoch+after, whose window lasts window, and reports whether it folded
// into an earlier one.
func (b *testBundle) createDeduped(t *testing.T, routineName, key string, after, window time.Duration) (*routine.Run, bool) {
	t.Helper()
	until := at(after + window)
	run, dup, err := b.s.RunCreateDeduped(b.ctx, &store.RunCreateParams{
		ID: newID(), Routine: routineName, Revision: "rev1",
		Trigger:  routine.TriggerInfo{Kind: "event", Payload: []byte(`{"host":"` + key + `"}`)},
		QueuedAt: at(after), DedupeKey: key, DedupeUntil: &until,
	})
	if err != nil {
		t.Fatalf("RunCreateDeduped: %v", err)
	}
	return run, dup
}
