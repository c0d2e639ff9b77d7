package storetest

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// alertEvent is the record of a transition of alert "slow" of routine
// "r" at epoch+d, to be delivered to Slack and a webhook.
func alertEvent(d time.Duration) *routine.AlertRecord {
	return &routine.AlertRecord{
		When: "p95_latency > 2s", Metric: "p95_latency", Value: 3.25, Threshold: 2, Runs: 12,
		Over: routine.Duration(15 * time.Minute), At: at(d), StartedAt: at(d - time.Minute),
		Deliveries: []routine.AlertDelivery{{Target: "slack"}, {Target: "webhook"}},
	}
}

// transition moves alert "slow" of routine "r" from → to at epoch+d.
func (b *testBundle) transition(t *testing.T, from, to string, d time.Duration) (*routine.AlertRecord, bool) {
	t.Helper()
	e, won, err := b.s.AlertTransition(b.ctx, &store.AlertTransitionParams{Routine: "r", Alert: "slow", From: from, To: to, Record: alertEvent(d)})
	if err != nil {
		t.Fatalf("AlertTransition %s → %s: %v", from, to, err)
	}
	return e, won
}

func exerciseAlerts(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Transitions", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if states, err := b.s.AlertStates(b.ctx); err != nil || len(states) != 0 {
			t.Fatalf("AlertStates of a new store = %v, %v; want none", states, err)
		}
		// An alert without a row is ok: it cannot clear.
		if _, won := b.transition(t, routine.AlertFiring, routine.AlertOK, 0); won {
			t.Fatal("firing → ok of an alert that never fired won")
		}
		e, won := b.transition(t, routine.AlertOK, routine.AlertFiring, time.Minute)
		if !won {
			t.Fatal("ok → firing of an alert that never fired lost")
		}
		want := alertEvent(time.Minute)
		want.ID, want.Routine, want.Alert, want.State = e.ID, "r", "slow", routine.AlertFiring
		want.At, want.StartedAt, want.NextTry = stored(at(time.Minute)), stored(at(0)), stored(at(time.Minute))
		if !reflect.DeepEqual(e, want) {
			t.Errorf("AlertTransition gave\n%+v\nwant\n%+v", e, want)
		}
		if _, won := b.transition(t, routine.AlertOK, routine.AlertFiring, 2*time.Minute); won {
			t.Fatal("ok → firing of a firing alert won")
		}
		states, err := b.s.AlertStates(b.ctx)
		if err != nil || len(states) != 1 || *states[0] != (store.AlertState{Routine: "r", Alert: "slow", State: routine.AlertFiring, Since: stored(at(time.Minute))}) {
			t.Fatalf("AlertStates = %v, %v; want r/slow firing since the first transition", states, err)
		}
		if _, won := b.transition(t, routine.AlertFiring, routine.AlertOK, 3*time.Minute); !won {
			t.Fatal("firing → ok of a firing alert lost")
		}
		if _, won := b.transition(t, routine.AlertOK, routine.AlertFiring, 4*time.Minute); !won {
			t.Fatal("ok → firing of a cleared alert lost")
		}
		list, err := b.s.AlertList(b.ctx, &store.AlertListParams{})
		if err != nil || len(list) != 3 {
			t.Fatalf("AlertList = %d records, %v; want the 3 transitions won", len(list), err)
		}
		if list[0].State != routine.AlertFiring || list[1].State != routine.AlertOK || list[2].ID != e.ID || !list[0].At.Equal(stored(at(4*time.Minute))) {
			t.Errorf("AlertList is not newest first: %+v %+v %+v", list[0], list[1], list[2])
		}
		if !reflect.DeepEqual(list[2], want) {
			t.Errorf("AlertList gave\n%+v\nwant what AlertTransition gave\n%+v", list[2], want)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for i, r := range []string{"a", "b", "a"} {
			ev := alertEvent(time.Duration(i) * time.Hour)
			ev.Deliveries = nil
			e, won, err := b.s.AlertTransition(b.ctx, &store.AlertTransitionParams{Routine: r, Alert: "x" + string(rune('0'+i)), From: routine.AlertOK, To: routine.AlertFiring, Record: ev})
			if err != nil || !won {
				t.Fatalf("AlertTransition = %v, %v", won, err)
			}
			if !e.Done || e.Deliveries != nil {
				t.Errorf("a record with nothing to deliver = done %v, deliveries %v; want done", e.Done, e.Deliveries)
			}
		}
		for _, tt := range []struct {
			p    store.AlertListParams
			want []string // alerts, newest first
		}{
			{store.AlertListParams{}, []string{"x2", "x1", "x0"}},
			{store.AlertListParams{Routine: "a"}, []string{"x2", "x0"}},
			{store.AlertListParams{Since: at(time.Hour)}, []string{"x2", "x1"}},
			{store.AlertListParams{Limit: 1}, []string{"x2"}},
			{store.AlertListParams{Routine: "b", Since: at(2 * time.Hour)}, nil},
		} {
			list, err := b.s.AlertList(b.ctx, &tt.p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Alert)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AlertList(%+v) = %v, want %v", tt.p, got, tt.want)
			}
		}
	})

	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		first, _ := b.transition(t, routine.AlertOK, routine.AlertFiring, 0)
		second, _ := b.transition(t, routine.AlertFiring, routine.AlertOK, time.Minute)
		claim := func(holder string, now time.Duration) []*routine.AlertRecord {
			t.Helper()
			list, err := b.s.AlertClaim(b.ctx, &store.AlertClaimParams{Holder: holder, Now: at(now), Lease: time.Minute, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return list
		}
		// The clearing waits for the firing of its alert to be delivered.
		got := claim("a", time.Minute)
		if len(got) != 1 || got[0].ID != first.ID || got[0].Holder != "a" || got[0].Attempts != 1 || !got[0].NextTry.Equal(stored(at(2*time.Minute))) {
			t.Fatalf("AlertClaim = %+v; want the firing alone, held by a until its lease ends", got)
		}
		if got := claim("b", time.Minute+time.Second); len(got) != 0 {
			t.Fatalf("AlertClaim during a's lease = %+v, want nothing", got)
		}
		// a's lease ran out: b takes the record over, and a's outcome is refused.
		got = claim("b", 2*time.Minute)
		if len(got) != 1 || got[0].ID != first.ID || got[0].Attempts != 2 {
			t.Fatalf("AlertClaim after the lease = %+v; want the firing again", got)
		}
		failed := []routine.AlertDelivery{{Target: "slack", OK: true, At: at(2 * time.Minute)}, {Target: "webhook", Error: "HTTP 503", At: at(2 * time.Minute)}}
		err := b.s.AlertDelivered(b.ctx, &store.AlertDeliveredParams{ID: first.ID, Holder: "a", Deliveries: failed, NextTry: at(3 * time.Minute)})
		if !errors.Is(err, routine.ErrConflict) {
			t.Fatalf("AlertDelivered by a lost holder: %v, want ErrConflict", err)
		}
		if err := b.s.AlertDelivered(b.ctx, &store.AlertDeliveredParams{ID: first.ID, Holder: "b", Deliveries: failed, NextTry: at(3 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if got := claim("a", 3*time.Minute-time.Second); len(got) != 0 {
			t.Fatalf("AlertClaim before the next try = %+v, want nothing", got)
		}
		got = claim("a", 3*time.Minute)
		if len(got) != 1 || got[0].ID != first.ID || got[0].Attempts != 3 || got[0].Deliveries[1].Error != "HTTP 503" ||
			!got[0].Deliveries[0].OK || !got[0].Deliveries[0].At.Equal(stored(at(2*time.Minute))) {
			t.Fatalf("AlertClaim at the next try = %+v; want the firing with its deliveries so far", got)
		}
		delivered := []routine.AlertDelivery{failed[0], {Target: "webhook", OK: true, At: at(3 * time.Minute)}}
		if err := b.s.AlertDelivered(b.ctx, &store.AlertDeliveredParams{ID: first.ID, Holder: "a", Deliveries: delivered, Done: true}); err != nil {
			t.Fatal(err)
		}
		got = claim("a", 3*time.Minute)
		if len(got) != 1 || got[0].ID != second.ID {
			t.Fatalf("AlertClaim once the firing is delivered = %+v; want the clearing", got)
		}
		list, err := b.s.AlertList(b.ctx, &store.AlertListParams{})
		if err != nil || len(list) != 2 || !list[1].Done || list[1].Holder != "" || !list[1].Deliveries[1].OK {
			t.Fatalf("AlertList after delivery = %+v, %v; want the firing done", list, err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Evaluators of several servers see the condition start at once:
		// one of them records it.
		const evaluators = 8
		var (
			wg   sync.WaitGroup
			wins atomic.Int32
		)
		for range evaluators {
			wg.Go(func() {
				_, won, err := b.s.AlertTransition(b.ctx, &store.AlertTransitionParams{Routine: "r", Alert: "slow", From: routine.AlertOK, To: routine.AlertFiring, Record: alertEvent(0)})
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d of %d concurrent transitions won, want 1", wins.Load(), evaluators)
		}
		// Records of many alerts, claimed by many holders: each once.
		const alerts = 20
		for i := range alerts {
			_, won, err := b.s.AlertTransition(b.ctx, &store.AlertTransitionParams{Routine: "many", Alert: string(rune('a' + i)), From: routine.AlertOK, To: routine.AlertFiring, Record: alertEvent(0)})
			if err != nil || !won {
				t.Fatal(won, err)
			}
		}
		var (
			mu      sync.Mutex
			claimed = map[int64]int{}
		)
		for h := range evaluators {
			wg.Go(func() {
				for range 5 {
					list, err := b.s.AlertClaim(b.ctx, &store.AlertClaimParams{Holder: string(rune('A' + h)), Now: at(time.Minute), Lease: time.Hour, Limit: 3})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, e := range list {
						claimed[e.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != alerts+1 {
			t.Errorf("%d records claimed, want all %d", len(claimed), alerts+1)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("record %d claimed %d times, want once", id, n)
			}
		}
	})
}
