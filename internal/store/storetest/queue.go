package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// lease is the lease of the claims of the queue tests.
const lease = 30 * time.Second

// claim claims a run as worker at now, with the ceilings given as
// alternating routine names and ceilings, and returns its id, or "" when
// nothing is claimable.
func (b *testBundle) claim(t *testing.T, worker string, now time.Time, ceilings ...any) string {
	t.Helper()
	p := &store.RunClaimParams{Worker: worker, Now: now, Lease: lease, Ceilings: map[string]int{}}
	for i := 0; i < len(ceilings); i += 2 {
		p.Ceilings[ceilings[i].(string)] = ceilings[i+1].(int)
	}
	runs, err := b.s.RunClaim(b.ctx, p)
	if err != nil {
		t.Fatalf("RunClaim: %v", err)
	}
	switch len(runs) {
	case 0:
		return ""
	case 1:
		return runs[0].ID
	}
	t.Fatalf("RunClaim with no limit took %d runs, want 1", len(runs))
	return ""
}

// claimAll claims until nothing is claimable and returns the ids in order.
func (b *testBundle) claimAll(t *testing.T, now time.Time, ceilings ...any) []string {
	t.Helper()
	var ids []string
	for {
		id := b.claim(t, "w", now, ceilings...)
		if id == "" {
			return ids
		}
		ids = append(ids, id)
	}
}

// queue creates a run of routine name queued at epoch + d.
func (b *testBundle) queue(t *testing.T, name string, d time.Duration) string {
	t.Helper()
	return b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.QueuedAt = name, at(d) }).ID
}

// finish moves a run to succeeded, as its executor does.
func (b *testBundle) finish(t *testing.T, id string) {
	t.Helper()
	run := b.getRun(t, id)
	run.State = routine.StateSucceeded
	if err := b.s.RunUpdate(b.ctx, run); err != nil {
		t.Fatalf("RunUpdate: %v", err)
	}
}

func exerciseQueue(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ClaimFIFO", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		var want []string
		for _, d := range []time.Duration{3, 1, 2, 1, 0} {
			want = append(want, b.queue(t, "r", d*time.Second))
		}
		slices.SortFunc(want, func(x, y string) int { return cmpRuns(b.getRun(t, x), b.getRun(t, y)) })

		claimed, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "host-1/7", Now: at(time.Hour), Lease: lease})
		if err != nil || len(claimed) != 1 {
			t.Fatalf("RunClaim = %d runs, %v; want 1", len(claimed), err)
		}
		first := claimed[0]
		// The claimed run is running and held by the worker; the rest of
		// it is as created.
		created := &routine.Run{ID: want[0], Routine: "r", Revision: "rev1",
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: epoch, State: routine.StateRunning,
			Worker: "host-1/7"}
		if first.TakenFrom != "" {
			t.Errorf("queued run claimed with TakenFrom %q, want none", first.TakenFrom)
		}
		checkRun(t, first.Run, created)
		checkRun(t, b.getRun(t, first.ID), created)

		got := append([]string{first.ID}, b.claimAll(t, at(time.Hour))...)
		if !slices.Equal(got, want) {
			t.Errorf("claimed\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("ClaimEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.finish(t, b.queue(t, "r", 0))
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: at(time.Hour), Lease: lease})
		if err != nil || len(runs) != 0 {
			t.Fatalf("RunClaim with nothing queued = %d runs, %v; want none", len(runs), err)
		}
	})

	t.Run("ClaimNotBefore", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		delayed := b.createRun(t, func(p *store.RunCreateParams) { p.NotBefore = ptr(at(10 * time.Second)) }).ID
		later := b.queue(t, "r", time.Second)
		// A delayed run holds back none queued after it.
		if got := b.claimAll(t, at(10*time.Second-time.Microsecond)); !slices.Equal(got, []string{later}) {
			t.Errorf("before not_before: claimed %v, want %v", got, []string{later})
		}
		// Due at not_before itself.
		if got := b.claim(t, "w", at(10*time.Second)); got != delayed {
			t.Errorf("at not_before: claimed %q, want %s", got, delayed)
		}
	})

	t.Run("ClaimCeiling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		r1, r2, r3 := b.queue(t, "r", 1*time.Second), b.queue(t, "r", 2*time.Second), b.queue(t, "r", 3*time.Second)
		now := at(time.Minute)
		if got := b.claimAll(t, now, "r", 2); !slices.Equal(got, []string{r1, r2}) {
			t.Fatalf("claimed %v, want %v", got, []string{r1, r2})
		}
		b.finish(t, r1)
		if got := b.claimAll(t, now, "r", 2); !slices.Equal(got, []string{r3}) {
			t.Fatalf("after one finished: claimed %v, want %v", got, []string{r3})
		}
		// A ceiling of 0 is none.
		r4 := b.queue(t, "r", 4*time.Second)
		if got := b.claimAll(t, now, "r", 0); !slices.Equal(got, []string{r4}) {
			t.Fatalf("ceiling 0: claimed %v, want %v", got, []string{r4})
		}
	})

	t.Run("ClaimLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a1, b1, a2, a3, b2 := b.queue(t, "a", 1*time.Second), b.queue(t, "b", 2*time.Second),
			b.queue(t, "a", 3*time.Second), b.queue(t, "a", 4*time.Second), b.queue(t, "b", 5*time.Second)
		// Several runs in one claim, oldest first; the ceiling of a counts
		// the runs this very claim took.
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: at(time.Minute), Lease: lease,
			Ceilings: map[string]int{"a": 2}, Limit: 4})
		if err != nil {
			t.Fatalf("RunClaim: %v", err)
		}
		var got []string
		for _, run := range runs {
			if run.State != routine.StateRunning || run.Worker != "w" {
				t.Errorf("claimed run %s is %s by %q, want running by w", run.ID, run.State, run.Worker)
			}
			got = append(got, run.ID)
		}
		if want := []string{a1, b1, a2, b2}; !slices.Equal(got, want) {
			t.Fatalf("claimed %v, want %v (a3 held back by the ceiling)", got, want)
		}
		// Fewer claimable than the limit: what there is.
		b.finish(t, a1)
		runs, err = b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: at(time.Minute), Lease: lease, Limit: 10})
		if err != nil || len(runs) != 1 || runs[0].ID != a3 {
			t.Fatalf("RunClaim = %d runs, %v; want only %s", len(runs), err, a3)
		}
	})

	t.Run("ClaimCeilingCountsForegroundRuns", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// A run executed in the foreground is running with no lease: it
		// takes a slot, and is never claimable itself.
		b.createRun(t, func(p *store.RunCreateParams) { p.State = routine.StateRunning })
		queued := b.queue(t, "r", time.Second)
		if got := b.claimAll(t, at(time.Hour), "r", 1); len(got) != 0 {
			t.Fatalf("claimed %v past the ceiling", got)
		}
		if got := b.claimAll(t, at(time.Hour), "r", 2); !slices.Equal(got, []string{queued}) {
			t.Fatalf("claimed %v, want %v", got, []string{queued})
		}
	})

	t.Run("ClaimFairAcrossRoutines", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Without ceilings, the oldest head goes first: queued order.
		a1, b1, a2, b2 := b.queue(t, "a", 1*time.Second), b.queue(t, "b", 2*time.Second),
			b.queue(t, "a", 3*time.Second), b.queue(t, "b", 4*time.Second)
		if got := b.claimAll(t, at(time.Minute)); !slices.Equal(got, []string{a1, b1, a2, b2}) {
			t.Fatalf("claimed %v, want %v", got, []string{a1, b1, a2, b2})
		}
		// A routine at its ceiling holds back no other, though its runs
		// are older.
		c1, c2, c3 := b.queue(t, "c", 5*time.Second), b.queue(t, "c", 6*time.Second), b.queue(t, "c", 7*time.Second)
		d1, d2 := b.queue(t, "d", 8*time.Second), b.queue(t, "d", 9*time.Second)
		if got := b.claimAll(t, at(time.Minute), "c", 1); !slices.Equal(got, []string{c1, d1, d2}) {
			t.Fatalf("claimed %v, want %v", got, []string{c1, d1, d2})
		}
		b.finish(t, c1)
		for _, want := range []string{c2, c3} {
			if got := b.claimAll(t, at(time.Minute), "c", 1); !slices.Equal(got, []string{want}) {
				t.Fatalf("claimed %v, want %v", got, []string{want})
			}
			b.finish(t, want)
		}
	})

	t.Run("ClaimExclude", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a1, b1 := b.queue(t, "a", 1*time.Second), b.queue(t, "b", 2*time.Second)
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: at(time.Minute), Lease: lease, Exclude: []string{"a"}, Limit: 5})
		if err != nil || len(runs) != 1 || runs[0].ID != b1 {
			t.Fatalf("claim excluding a: %v %d runs, want only %s", err, len(runs), b1)
		}
		if got := b.claim(t, "w", at(time.Minute)); got != a1 {
			t.Fatalf("claimed %q, want %s", got, a1)
		}
	})

	t.Run("ClaimExpiredLease", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		first := b.queue(t, "r", 0)
		second := b.queue(t, "r", time.Second)
		if got := b.claim(t, "w1", epoch, "r", 1); got != first {
			t.Fatalf("claimed %q, want %s", got, first)
		}
		if got := b.claim(t, "w2", at(lease-time.Microsecond), "r", 1); got != "" {
			t.Fatalf("claimed %s while the lease holds", got)
		}
		// At expiry the run is claimable again, before the run queued
		// after it, and its expired lease frees its slot.
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w2", Now: at(lease), Lease: lease,
			Ceilings: map[string]int{"r": 1}, Limit: 3})
		if err != nil || len(runs) != 1 {
			t.Fatalf("RunClaim at expiry = %d runs, %v; want 1 (the ceiling)", len(runs), err)
		}
		if run := runs[0]; run.ID != first || run.Worker != "w2" || run.State != routine.StateRunning || run.TakenFrom != "w1" {
			t.Fatalf("RunClaim at expiry = %s taken from %q; want %s held by w2, taken from w1", show(run.Run), run.TakenFrom, first)
		}
		if got := b.claim(t, "w3", at(lease), "r", 1); got != "" {
			t.Fatalf("claimed %s past the ceiling", got)
		}
		// The first worker lost the run: its heartbeat extends nothing,
		// and it may not requeue it.
		if hb, err := b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "w1", Now: at(lease), Lease: lease}); err != nil || len(hb.Renewed) != 0 {
			t.Errorf("RunHeartbeat of the old worker = %+v, %v; want none renewed", hb, err)
		}
		if err := b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: first, Worker: "w1"}); !errors.Is(err, routine.ErrConflict) {
			t.Errorf("RunRequeue by the old worker: got %v, want ErrConflict", err)
		}
		b.finish(t, first)
		if got := b.claim(t, "w3", at(lease), "r", 1); got != second {
			t.Fatalf("claimed %q, want %s", got, second)
		}
	})

	t.Run("HeartbeatExtendsLease", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		r1, r2, other := b.queue(t, "r", 0), b.queue(t, "r", time.Second), b.queue(t, "r", 2*time.Second)
		for _, want := range []string{r1, r2} {
			if got := b.claim(t, "w1", epoch); got != want {
				t.Fatalf("claimed %q, want %s", got, want)
			}
		}
		if got := b.claim(t, "w2", epoch); got != other {
			t.Fatalf("claimed %q, want %s", got, other)
		}
		hb, err := b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "w1", Now: at(20 * time.Second), Lease: lease})
		if err != nil || len(hb.Renewed) != 2 || len(hb.Cancel) != 0 {
			t.Fatalf("RunHeartbeat = %+v, %v; want 2 renewed, none to cancel", hb, err)
		}
		// Only other's lease expired.
		if got := b.claimAll(t, at(49*time.Second)); !slices.Equal(got, []string{other}) {
			t.Fatalf("claimed %v, want %v", got, []string{other})
		}
		// With ids, only those.
		hb, err = b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "w1", IDs: []string{r2, other},
			Now: at(40 * time.Second), Lease: lease})
		if err != nil || !slices.Equal(hb.Renewed, []string{r2}) {
			t.Fatalf("RunHeartbeat of ids = %+v, %v; want %s renewed", hb, err, r2)
		}
		if got := b.claim(t, "w3", at(50*time.Second)); got != r1 {
			t.Fatalf("claimed %q, want %s", got, r1)
		}
		if got := b.claim(t, "w3", at(50*time.Second)); got != "" {
			t.Fatalf("claimed %s, whose lease was extended", got)
		}
		// A finished run has no lease to extend.
		b.finish(t, r2)
		hb, err = b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "w1", Now: at(time.Minute), Lease: lease})
		if err != nil || len(hb.Renewed) != 0 {
			t.Fatalf("RunHeartbeat after finishing = %+v, %v; want none renewed", hb, err)
		}
	})

	t.Run("Requeue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		first, second := b.queue(t, "r", 0), b.queue(t, "r", time.Second)
		if got := b.claim(t, "w", epoch); got != first {
			t.Fatalf("claimed %q, want %s", got, first)
		}
		run := b.getRun(t, first)
		run.Attempt, run.StartedAt = 1, ptr(epoch)
		if err := b.s.RunUpdate(b.ctx, run); err != nil {
			t.Fatalf("RunUpdate: %v", err)
		}
		if err := b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: first, Worker: "w",
			NotBefore: ptr(at(time.Minute))}); err != nil {
			t.Fatalf("RunRequeue: %v", err)
		}
		want := *run
		want.State, want.Worker = routine.StateQueued, ""
		checkRun(t, b.getRun(t, first), &want)
		if got := b.claimAll(t, at(time.Minute-time.Microsecond)); !slices.Equal(got, []string{second}) {
			t.Fatalf("claimed %v before not_before, want %v", got, []string{second})
		}
		// Requeued without a delay, a run keeps its place: before the runs
		// queued after it.
		b.finish(t, second)
		third := b.queue(t, "r", 2*time.Second)
		if got := b.claim(t, "w", at(time.Minute)); got != first {
			t.Fatalf("claimed %q, want %s", got, first)
		}
		if err := b.s.RunRequeue(b.ctx, &store.RunRequeueParams{ID: first, Worker: "w"}); err != nil {
			t.Fatalf("RunRequeue: %v", err)
		}
		if got := b.claimAll(t, at(time.Minute)); !slices.Equal(got, []string{first, third}) {
			t.Fatalf("claimed %v, want %v", got, []string{first, third})
		}
	})

	t.Run("RequeueErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		queued := b.queue(t, "r", 0)
		for _, tc := range []struct {
			name string
			p    store.RunRequeueParams
			want error
		}{
			{"missing", store.RunRequeueParams{ID: newID(), Worker: "w"}, routine.ErrNotFound},
			{"queued", store.RunRequeueParams{ID: queued, Worker: "w"}, routine.ErrConflict},
		} {
			if err := b.s.RunRequeue(b.ctx, &tc.p); !errors.Is(err, tc.want) {
				t.Errorf("%s: RunRequeue: got %v, want %v", tc.name, err, tc.want)
			}
		}
		checkRun(t, b.getRun(t, queued), b.getRun(t, queued))
		if got := b.claim(t, "w", epoch); got != queued {
			t.Fatalf("claimed %q, want %s", got, queued)
		}
	})

	t.Run("Count", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		counts, err := b.s.RunCount(b.ctx, &store.RunCountParams{})
		if err != nil || len(counts) != 0 {
			t.Fatalf("RunCount of an empty store = %v, %v; want none", counts, err)
		}
		for i := range 3 {
			b.queue(t, "a", time.Duration(i)*time.Second)
		}
		b.queue(t, "b", 0)
		b.claim(t, "w", epoch) // an a
		b.finish(t, b.queue(t, "b", time.Second))
		for _, tc := range []struct {
			name string
			p    store.RunCountParams
			want map[routine.State]int
		}{
			{"all", store.RunCountParams{}, map[routine.State]int{
				routine.StateQueued: 3, routine.StateRunning: 1, routine.StateSucceeded: 1}},
			{"queued", store.RunCountParams{States: []routine.State{routine.StateQueued}},
				map[routine.State]int{routine.StateQueued: 3}},
			{"routine", store.RunCountParams{Routine: "b"},
				map[routine.State]int{routine.StateQueued: 1, routine.StateSucceeded: 1}},
			{"routine and states", store.RunCountParams{Routine: "a",
				States: []routine.State{routine.StateRunning, routine.StateFailed}},
				map[routine.State]int{routine.StateRunning: 1}},
			{"routines", store.RunCountParams{Routines: []string{"b", "c"}, States: []routine.State{routine.StateQueued}},
				map[routine.State]int{routine.StateQueued: 1}},
			{"no routines", store.RunCountParams{Routines: []string{}}, map[routine.State]int{}},
		} {
			got, err := b.s.RunCount(b.ctx, &tc.p)
			if err != nil {
				t.Fatalf("%s: RunCount: %v", tc.name, err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("%s: RunCount = %v, want %v", tc.name, got, tc.want)
			}
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const runs, claimers = 200, 8
		want := map[string]bool{}
		for i := range runs {
			want[b.queue(t, fmt.Sprint("r", i%3), time.Duration(i)*time.Millisecond)] = true
		}
		var (
			mu      sync.Mutex
			claimed = map[string]string{} // run id → worker
			wg      sync.WaitGroup
		)
		for w := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker := fmt.Sprint("w", w)
				for {
					runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: at(time.Hour), Lease: time.Hour, Limit: 3})
					if err != nil {
						t.Errorf("%s: RunClaim: %v", worker, err)
						return
					}
					if len(runs) == 0 {
						return
					}
					mu.Lock()
					for _, run := range runs {
						if prev, ok := claimed[run.ID]; ok {
							t.Errorf("run %s claimed by %s and %s", run.ID, prev, worker)
						}
						claimed[run.ID] = worker
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) != runs {
			t.Fatalf("claimed %d runs, want %d", len(claimed), runs)
		}
		for id, worker := range claimed {
			if !want[id] {
				t.Errorf("claimed unknown run %s", id)
			}
			if got := b.getRun(t, id); got.State != routine.StateRunning || got.Worker != worker {
				t.Errorf("run %s: %s by %q, want running by %s", id, got.State, got.Worker, worker)
			}
		}
	})
}
