package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// groupClaim claims up to limit runs as worker at now, under the routine
// ceilings and the ceiling of group "g" of routines a1 and a2 (a
// namespace's max_running); routine b is of no group.
func (b *testBundle) groupClaim(t *testing.T, worker string, limit, groupCeiling int, ceilings map[string]int) []string {
	t.Helper()
	runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: at(time.Hour), Lease: time.Hour, Limit: limit,
		Ceilings: ceilings, Groups: map[string]string{"a1": "g", "a2": "g"}, GroupCeilings: map[string]int{"g": groupCeiling}})
	if err != nil {
		t.Fatalf("RunClaim: %v", err)
	}
	ids := []string{}
	for _, run := range runs {
		ids = append(ids, run.ID)
	}
	return ids
}

func exerciseGroupCeilings(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Ceiling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		a1, a2, a3, b1, a4 := b.queue(t, "a1", 1*time.Second), b.queue(t, "a2", 2*time.Second),
			b.queue(t, "a1", 3*time.Second), b.queue(t, "b", 4*time.Second), b.queue(t, "a2", 5*time.Second)
		// The group's two slots go to its oldest runs, whichever routine;
		// a routine of no group is not held back.
		if got := b.groupClaim(t, "w", 10, 2, nil); !slices.Equal(got, []string{a1, a2, b1}) {
			t.Fatalf("claimed %v, want %v", got, []string{a1, a2, b1})
		}
		b.finish(t, a2)
		if got := b.groupClaim(t, "w", 10, 2, nil); !slices.Equal(got, []string{a3}) {
			t.Fatalf("after one ended: claimed %v, want %v", got, []string{a3})
		}
		// A routine's own ceiling still holds within the group's.
		b.finish(t, a1)
		b.finish(t, a3)
		a5 := b.queue(t, "a2", 6*time.Second)
		if got := b.groupClaim(t, "w", 10, 3, map[string]int{"a2": 1}); !slices.Equal(got, []string{a4}) {
			t.Fatalf("under a2's ceiling of 1: claimed %v, want %v", got, []string{a4})
		}
		// A ceiling of 0 is none.
		if got := b.groupClaim(t, "w", 10, 0, nil); !slices.Equal(got, []string{a5}) {
			t.Fatalf("group ceiling 0: claimed %v, want %v", got, []string{a5})
		}
	})

	t.Run("CountsForegroundRuns", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// A run of a routine of the group executed in the foreground
		// (running, no lease) takes one of the group's slots.
		b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.State = "a2", routine.StateRunning })
		queued := b.queue(t, "a1", time.Second)
		if got := b.groupClaim(t, "w", 5, 1, nil); len(got) != 0 {
			t.Fatalf("claimed %v past the group's ceiling", got)
		}
		if got := b.groupClaim(t, "w", 5, 2, nil); !slices.Equal(got, []string{queued}) {
			t.Fatalf("claimed %v, want %v", got, []string{queued})
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Claimers at once, each taking several runs a claim and ending
		// them before its next: the group never has more than its
		// ceiling running, and every run is taken in the end.
		const runs, claimers, ceiling = 90, 6, 2
		for i := range runs {
			b.queue(t, []string{"a1", "a2", "b"}[i%3], time.Duration(i)*time.Millisecond)
		}
		var (
			mu            sync.Mutex
			running, most int // of the group, as the claimers saw them
			inGroup       int // runs of the group claimed
			ended         int
			wg            sync.WaitGroup
			claimed       = map[string]bool{}
			member        = map[string]bool{"a1": true, "a2": true}
		)
		for w := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				worker := fmt.Sprint("w", w)
				for {
					got, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: at(time.Hour), Lease: time.Hour, Limit: 3,
						Groups: map[string]string{"a1": "g", "a2": "g"}, GroupCeilings: map[string]int{"g": ceiling}})
					if err != nil {
						t.Errorf("%s: RunClaim: %v", worker, err)
						return
					}
					mu.Lock()
					for _, run := range got {
						if claimed[run.ID] {
							t.Errorf("run %s claimed twice", run.ID)
						}
						claimed[run.ID] = true
						if member[run.Routine] {
							running++
							inGroup++
							most = max(most, running)
						}
					}
					mu.Unlock()
					for _, run := range got {
						// Counted out before the end is written: a claim
						// can take the slot only once it is.
						mu.Lock()
						if member[run.Routine] {
							running--
						}
						ended++
						mu.Unlock()
						run.State = routine.StateSucceeded
						if err := b.s.RunUpdate(b.ctx, run.Run); err != nil {
							t.Errorf("%s: RunUpdate: %v", worker, err)
							return
						}
					}
					mu.Lock()
					all := ended == runs
					mu.Unlock()
					if all {
						return
					}
				}
			}()
		}
		wg.Wait()
		if most > ceiling || most == 0 {
			t.Errorf("the group had up to %d runs running at once, want at most %d (and some)", most, ceiling)
		}
		if len(claimed) != runs || inGroup != 2*runs/3 {
			t.Errorf("claimed %d runs (%d of the group), want %d (%d)", len(claimed), inGroup, runs, 2*runs/3)
		}
	})
}
