package postgres

import (
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// TestOutcomeChangesAtScale: storetest.OutcomesAtScale, the runs written
// in one statement.
func TestOutcomeChangesAtScale(t *testing.T) {
	s, err := Open(t.Context(), pgtest.Shared(t).Database(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.OutcomesAtScale(t, s, func(n int, since time.Time) error {
		// The rollups are not what is measured: their triggers stay out.
		if _, err := s.pool.Exec(t.Context(), "ALTER TABLE runs DISABLE TRIGGER USER"); err != nil {
			return err
		}
		_, err := s.pool.Exec(t.Context(), `
INSERT INTO runs (id, routine, revision, trigger_kind, state, attempt, queued_at, started_at, finished_at,
    worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of)
SELECT lpad(i::text, 26, '0'), 'routine-' || (i % 20), 'rev', 'cron',
    CASE WHEN random() < 0.05 THEN 'failed' ELSE 'succeeded' END, 1,
    $1::timestamptz + i * interval '90 days' / $2, $1::timestamptz + i * interval '90 days' / $2 + interval '1 ms',
    $1::timestamptz + i * interval '90 days' / $2 + interval '500 ms', '', '', 1, 1, 1000, ''
FROM generate_series(0, $2 - 1) i`, since, n)
		if err == nil {
			_, err = s.pool.Exec(t.Context(), "ANALYZE runs")
		}
		return err
	})
}
