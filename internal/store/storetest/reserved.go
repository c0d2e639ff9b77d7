package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// exerciseFleetReserved checks that claims keep the reserved slots of
// routines free across the fleet: the slots of the live workers in the
// registry.
func exerciseFleetReserved(t *testing.T, open func(t *testing.T) store.Store) {
	t.Parallel()
	b := setup(t, open)
	now := at(time.Minute)
	for _, w := range []struct {
		id    string
		slots int
		beat  time.Time
	}{
		{"w1", 2, now}, {"w2", 2, now},
		{"dead", 10, now.Add(-store.WorkerTimeout)}, // not live: its slots count for nothing
	} {
		if err := b.s.WorkerBeat(b.ctx, &store.WorkerBeatParams{ID: w.id, Slots: w.slots, Now: w.beat}); err != nil {
			t.Fatal(err)
		}
	}
	name := map[string]string{} // run id → routine and rank
	for i := range 4 {
		name[b.queue(t, "free", time.Duration(i)*time.Second)] = fmt.Sprint("free", i+1)
	}
	for i := range 3 {
		name[b.queue(t, "res", time.Duration(10+i)*time.Second)] = fmt.Sprint("res", i+1)
	}
	claim := func(reserved map[string]int) []string {
		t.Helper()
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w1", Now: now, Lease: time.Hour, Limit: 10,
			Reserved: reserved})
		if err != nil {
			t.Fatalf("RunClaim: %v", err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, name[r.ID])
		}
		return got
	}
	reserved := map[string]int{"res": 2, "idle": 0}
	for _, step := range []struct {
		finish string // a run to end before the claim
		want   []string
		why    string
	}{
		{"", []string{"free1", "free2", "res1", "res2"}, "4 slots, 2 kept for res though its runs came last"},
		{"res1", []string{"res3"}, "a slot of res freed is res's again"},
		{"free1", []string{"free3"}, "res has its 2: the slot freed is anyone's"},
		{"", nil, "every slot busy"},
	} {
		for id, n := range name {
			if n == step.finish {
				b.finish(t, id)
			}
		}
		if got := claim(reserved); !slices.Equal(got, step.want) {
			t.Fatalf("after %q ended: claimed %v, want %v (%s)", step.finish, got, step.want, step.why)
		}
	}
	// Without reservations, the fleet is not counted.
	if got := claim(nil); !slices.Equal(got, []string{"free4"}) {
		t.Fatalf("without reservations: claimed %v, want [free4]", got)
	}
}
