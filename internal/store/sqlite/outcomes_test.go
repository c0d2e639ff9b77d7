package sqlite_test

import (
	"os"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store/storetest"
)

// TestOutcomeChangesAtScale: storetest.OutcomesAtScale, the runs written
// in one statement; $ROUTINES_SCALE_KEEP keeps the file, to look at.
func TestOutcomeChangesAtScale(t *testing.T) {
	s, b := setup(t)
	if p := os.Getenv("ROUTINES_SCALE_KEEP"); p != "" {
		b.path = p
		s = b.open(t)
	}
	storetest.OutcomesAtScale(t, s, func(n int, since time.Time) error {
		db := b.raw(t)
		// The rollups are not what is measured: their triggers stay out.
		for _, stmt := range []string{"DROP TRIGGER runs_created_ended", "DROP TRIGGER runs_tags"} {
			if _, err := db.ExecContext(b.ctx, stmt); err != nil {
				return err
			}
		}
		const day = int64(24 * time.Hour / time.Microsecond)
		t0 := since.UnixMicro()
		_, err := db.ExecContext(b.ctx, `
INSERT INTO runs (id, routine, revision, trigger_kind, state, attempt, queued_at, started_at, finished_at,
    worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of)
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < ? - 1)
SELECT printf('%026d', n), 'routine-' || (n % 20), 'rev', 'cron',
    CASE WHEN abs(random()) % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
    ? + n * (90 * ?) / ?, ? + n * (90 * ?) / ? + 1000, ? + n * (90 * ?) / ? + 500000,
    '', '', 1, 1, 1000, ''
FROM i`, n, t0, day, n, t0, day, n, t0, day, n)
		return err
	})
}
