package sqlite_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// TestOutcomeChangesAtScale measures RunOutcomeChanges over
// $ROUTINES_SCALE_RUNS runs (1000000 for the figure in
// docs/observability.md) of 20 routines over 90 days, one in 20 failed:
// it must read them in one pass, in well under the time of a report.
// Skipped without the variable: generating the runs takes a while.
func TestOutcomeChangesAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROUTINES_SCALE_RUNS"))
	if n == 0 {
		t.Skip("set ROUTINES_SCALE_RUNS=1000000 to measure")
	}
	s, b := setup(t)
	if p := os.Getenv("ROUTINES_SCALE_KEEP"); p != "" {
		b.path = p
		s = b.open(t)
	}
	db := b.raw(t)
	const day = int64(24 * time.Hour / time.Microsecond)
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t0 := since.UnixMicro()
	start := time.Now()
	// The rollups are not what is measured: their triggers stay out.
	for _, stmt := range []string{"DROP TRIGGER runs_created_ended", "DROP TRIGGER runs_tags"} {
		if _, err := db.ExecContext(b.ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	_, err := db.ExecContext(b.ctx, `
INSERT INTO runs (id, routine, revision, trigger_kind, state, attempt, queued_at, started_at, finished_at,
    worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of)
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < ? - 1)
SELECT printf('%026d', n), 'routine-' || (n % 20), 'rev', 'cron',
    CASE WHEN abs(random()) % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
    ? + n * (90 * ?) / ?, ? + n * (90 * ?) / ? + 1000, ? + n * (90 * ?) / ? + 500000,
    '', '', 1, 1, 1000, ''
FROM i`, n, t0, day, n, t0, day, n, t0, day, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs generated in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	changes, err := s.RunOutcomeChanges(b.ctx, &store.RunOutcomeChangesParams{Since: since, Until: since.Add(90 * 24 * time.Hour)})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RunOutcomeChanges over %d runs: %d changes in %v", n, len(changes), took.Round(time.Millisecond))
	// One run in 20 fails: about 2 × n/20 × 19/20 changes.
	if want := n / 10 * 19 / 20; len(changes) < want*8/10 || len(changes) > want*12/10 {
		t.Errorf("%d changes, want about %d", len(changes), want)
	}
	if limit := time.Duration(n) * 20 * time.Microsecond; took > limit {
		t.Errorf("took %v, want under %v", took, limit)
	}
}
