package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// TestStatsConcurrentEnds has stores on one database, as on machines of
// their own, end the same runs at once through RunUpdate and through
// checkpoints (which a store batches, several runs to a statement):
// each run is counted once, and the transactions that add to the same
// rollups, in different orders of runs, neither deadlock nor fail.
func TestStatsConcurrentEnds(t *testing.T) {
	t.Parallel()
	first, b := setup(t)
	stores := []*postgres.Store{first, b.open(t, postgres.Options{}), b.open(t, postgres.Options{}), b.open(t, postgres.Options{})}
	hour := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	const n = 120
	runs := make([]*routine.Run, n)
	for i := range runs {
		var err error
		runs[i], err = first.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(),
			Routine: fmt.Sprintf("r%d", i%5), QueuedAt: hour.Add(time.Duration(i) * 37 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		runs[i].State = routine.StateSucceeded
		runs[i].StartedAt = &runs[i].QueuedAt
		runs[i].FinishedAt = new(runs[i].QueuedAt.Add(time.Second))
		runs[i].CPUUserMs = 1
	}
	var wg sync.WaitGroup
	for si, s := range stores {
		for g := range 4 {
			wg.Go(func() {
				// Each goroutine ends every run, in an order of its own.
				for k := range n {
					run := *runs[(k*(si*4+g+1)*7+si)%n]
					var err error
					if g%2 == 0 {
						err = s.RunUpdate(b.ctx, &run)
					} else {
						err = s.Checkpoint(b.ctx, &store.CheckpointParams{Run: &run})
					}
					if err != nil {
						t.Errorf("store %d: end %s: %v", si, run.ID, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	stats, err := first.Stats(b.ctx, &store.StatsParams{Since: hour, Until: hour.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, st := range stats {
		total += st.Totals.ByState[routine.StateSucceeded]
		if got, want := st.Totals.CPUSeconds, float64(st.Totals.Duration.Count())/1000; got != want {
			t.Errorf("%s: %v CPU-seconds, want %v", st.Routine, got, want)
		}
	}
	if total != n {
		t.Errorf("%d runs counted, want %d", total, n)
	}
}
