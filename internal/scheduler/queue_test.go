package scheduler_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// queueSetup returns a queue on a fresh store, its virtual clock
// and a counter of its wake-ups.
func queueSetup(t *testing.T) (*scheduler.Queue, store.Store, *clock.Virtual, *int) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewVirtual(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	wakes := 0
	q := scheduler.NewQueue(st, clk, nil)
	q.OnQueued(func() { wakes++ })
	return q, st, clk, &wakes
}

// A message fetched again (its cursor was not saved before a crash) folds
// into the run its first firing queued, within the window; after it, the
// same key queues a new run.
func TestQueueDedupeFoldsWithinTheWindow(t *testing.T) {
	t.Parallel()
	q, st, clk, wakes := queueSetup(t)
	var heard []bool // whether each request folded, as OnEnqueued hears it
	q.OnEnqueued(func(_ *scheduler.Request, deduped bool, err error) {
		if err != nil {
			t.Errorf("OnEnqueued heard %v", err)
		}
		heard = append(heard, deduped)
	})
	r := &routine.Routine{Name: "support-ack", Revision: "rev1", Tags: []string{"prod"}}
	req := func(key string) *scheduler.Request {
		return &scheduler.Request{Routine: r, Trigger: routine.TriggerInfo{Kind: "email", Payload: []byte(`{"uid":7}`)},
			DedupeKey: key, DedupeWindow: time.Hour}
	}
	first, dup, err := q.Enqueue(t.Context(), req("imap:0:42:7"))
	if err != nil || dup {
		t.Fatalf("first: dup %v, %v", dup, err)
	}
	again, dup, err := q.Enqueue(t.Context(), req("imap:0:42:7"))
	if err != nil || !dup || again.ID != first.ID {
		t.Fatalf("again: %v dup %v, %v; want run %s folded", again, dup, err, first.ID)
	}
	if _, dup, err := q.Enqueue(t.Context(), req("imap:0:42:8")); err != nil || dup {
		t.Fatalf("other key: dup %v, %v", dup, err)
	}
	clk.Advance(time.Hour + time.Second)
	if later, dup, err := q.Enqueue(t.Context(), req("imap:0:42:7")); err != nil || dup || later.ID == first.ID {
		t.Fatalf("after the window: dup %v, %v", dup, err)
	}
	runs, err := st.RunList(t.Context(), &store.RunListParams{Routine: r.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || *wakes != 3 {
		t.Fatalf("%d runs, %d wake-ups; want 3 and 3 (a folded request wakes nobody)", len(runs), *wakes)
	}
	if want := []bool{false, true, false, false}; !slices.Equal(heard, want) {
		t.Errorf("OnEnqueued heard folds %v, want %v", heard, want)
	}
	for _, run := range runs {
		if run.State != routine.StateQueued || run.Revision != "rev1" || len(run.Tags) != 1 || string(run.Trigger.Payload) != `{"uid":7}` {
			t.Fatalf("run %+v", run)
		}
	}
}

// A run its creator executes (run-once, a sub-run) is created running,
// held under a lease, and wakes no dispatcher: nobody else may claim it.
func TestQueueRunningIsHeldNotClaimable(t *testing.T) {
	t.Parallel()
	q, st, clk, wakes := queueSetup(t)
	r := &routine.Routine{Name: "r", Revision: "rev1"}
	run, _, err := q.Enqueue(t.Context(), &scheduler.Request{
		ID: "01JTESTRUNNING0000000000000", Routine: r, Trigger: routine.TriggerInfo{Kind: "manual"},
		Input: map[string]string{"who": "ada"}, Running: true, Holder: "me:1", Lease: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != "01JTESTRUNNING0000000000000" || run.State != routine.StateRunning || run.Worker != "me:1" || run.Input["who"] != "ada" || *wakes != 0 {
		t.Fatalf("run %+v, %d wake-ups", run, *wakes)
	}
	claimed, err := st.RunClaim(t.Context(), &store.RunClaimParams{Worker: "other:2", Now: clk.Now(), Lease: time.Minute})
	if err != nil || len(claimed) != 0 {
		t.Fatalf("another worker claimed %d runs (%v) while the lease holds", len(claimed), err)
	}
}

// A delayed run is not claimed before its time.
func TestQueueNotBefore(t *testing.T) {
	t.Parallel()
	q, st, clk, _ := queueSetup(t)
	later := clk.Now().Add(time.Minute)
	if _, _, err := q.Enqueue(t.Context(), &scheduler.Request{Routine: &routine.Routine{Name: "r"}, NotBefore: &later}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{clk.Now(), 0}, {later, 1}} {
		claimed, err := st.RunClaim(t.Context(), &store.RunClaimParams{Worker: "w:1", Now: tc.at, Lease: time.Minute})
		if err != nil || len(claimed) != tc.want {
			t.Fatalf("at %s: claimed %d (%v), want %d", tc.at, len(claimed), err, tc.want)
		}
	}
}
