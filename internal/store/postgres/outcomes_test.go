package postgres

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store"
)

// TestOutcomeChangesAtScale measures RunOutcomeChanges over
// $ROUTINES_SCALE_RUNS runs (1000000 for the figure in
// docs/observability.md) of 20 routines over 90 days, one in 20 failed.
// Skipped without the variable: generating the runs takes a while.
func TestOutcomeChangesAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROUTINES_SCALE_RUNS"))
	if n == 0 {
		t.Skip("set ROUTINES_SCALE_RUNS=1000000 to measure")
	}
	s, err := Open(t.Context(), pgtest.Shared(t).Database(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	// The rollups are not what is measured: their triggers stay out.
	if _, err := s.pool.Exec(t.Context(), "ALTER TABLE runs DISABLE TRIGGER USER"); err != nil {
		t.Fatal(err)
	}
	_, err = s.pool.Exec(t.Context(), `
INSERT INTO runs (id, routine, revision, trigger_kind, state, attempt, queued_at, started_at, finished_at,
    worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of)
SELECT lpad(i::text, 26, '0'), 'routine-' || (i % 20), 'rev', 'cron',
    CASE WHEN random() < 0.05 THEN 'failed' ELSE 'succeeded' END, 1,
    $1::timestamptz + i * interval '90 days' / $2, $1::timestamptz + i * interval '90 days' / $2 + interval '1 ms',
    $1::timestamptz + i * interval '90 days' / $2 + interval '500 ms', '', '', 1, 1, 1000, ''
FROM generate_series(0, $2 - 1) i`, since, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(t.Context(), "ANALYZE runs"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs generated in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	changes, err := s.RunOutcomeChanges(t.Context(), &store.RunOutcomeChangesParams{Since: since, Until: since.Add(90 * 24 * time.Hour)})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RunOutcomeChanges over %d runs: %d changes in %v", n, len(changes), took.Round(time.Millisecond))
	if want := n / 10 * 19 / 20; len(changes) < want*8/10 || len(changes) > want*12/10 {
		t.Errorf("%d changes, want about %d", len(changes), want)
	}
	if limit := time.Duration(n) * 20 * time.Microsecond; took > limit {
		t.Errorf("took %v, want under %v", took, limit)
	}
}
