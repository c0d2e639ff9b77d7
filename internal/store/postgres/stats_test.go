package postgres_test

import (
	"fmt"
	"os"
	"strings"
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

// TestRollupDaysBackfill: 0009_rollup_days.sql sums the days of the runs
// that ended before it from their hours, to the rows its trigger writes
// as runs end: the day rows of runs ended through the store, dropped and
// summed again by the migration on the database as 0008 left it, are the
// same.
func TestRollupDaysBackfill(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	day := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	for i := range 40 {
		queued := day.Add(time.Duration(i) * 157 * time.Minute)
		run, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: fmt.Sprintf("r%d", i%3), QueuedAt: queued})
		if err != nil {
			t.Fatal(err)
		}
		run.State = []routine.State{routine.StateSucceeded, routine.StateFailed, routine.StateDead, routine.StateCancelled}[i%4]
		if run.State != routine.StateCancelled {
			run.StartedAt = new(queued.Add(time.Duration(i) * time.Second))
		}
		run.FinishedAt = new(queued.Add(time.Duration(i*i) * time.Second))
		run.CPUUserMs, run.CPUSysMs = int64(i), 1
		run.Usage = routine.Usage{GBSeconds: float64(i) / 4, BytesSent: int64(i), BytesReceived: 2,
			Tokens: map[string]routine.Tokens{fmt.Sprint("m", i%2): {Input: int64(i), Output: 1}}}
		if err := s.RunUpdate(b.ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	conn := b.raw(t)
	days := func() string {
		t.Helper()
		var got string
		if err := conn.QueryRow(b.ctx, `SELECT concat_ws(' | ',
				(SELECT string_agg(r::text, ', ' ORDER BY r.start, r.routine) FROM rollups r WHERE r.width = 86400),
				(SELECT string_agg(r::text, ', ' ORDER BY r.start, r.routine, r.model) FROM rollup_tokens r WHERE r.width = 86400))`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := days()
	if !strings.Contains(want, "2025-03-18") {
		t.Fatalf("day rollups %s: want days up to 2025-03-18", want)
	}
	migration, err := os.ReadFile("migrations/0009_rollup_days.sql")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx)
	// The database as 0008 left it: no days, and routines_rollup_add of
	// 0006_rollups.sql.
	before := []string{"DELETE FROM rollups WHERE width = 86400", "DELETE FROM rollup_tokens WHERE width = 86400",
		`DO $$ BEGIN
			EXECUTE replace(pg_get_functiondef('routines_rollup_add'::regproc), ', (86400)', '');
		END $$`}
	for _, q := range append(before, string(migration)) {
		if _, err := tx.Exec(b.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(b.ctx); err != nil {
		t.Fatal(err)
	}
	if got := days(); got != want {
		t.Errorf("days summed by the migration:\n%s\nwant, as the trigger wrote them:\n%s", got, want)
	}
}
