package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// RunOutcomeChanges reads the runs that ended in the range once, in the
// database: a window compares each run's outcome with its routine's
// previous one, and only the changes come back.
func (s *Store) RunOutcomeChanges(ctx context.Context, p *store.RunOutcomeChangesParams) ([]store.OutcomeChange, error) {
	args := []any{p.Since.UnixMicro(), p.Until.UnixMicro()}
	only := ""
	if len(p.Routines) > 0 {
		only = " AND routine IN (?" + strings.Repeat(", ?", len(p.Routines)-1) + ")"
		for _, r := range p.Routines {
			args = append(args, r)
		}
	}
	rows, err := s.r.QueryContext(ctx, `
SELECT routine, id, state, finished_at FROM (
    SELECT routine, id, state, finished_at, state = 'succeeded' AS ok,
        lag(state = 'succeeded') OVER (PARTITION BY routine ORDER BY finished_at, id) AS prev_ok
    FROM runs
    WHERE finished_at >= ? AND finished_at < ? AND state IN ('succeeded', 'failed', 'dead')`+only+`
) WHERE prev_ok IS NULL OR prev_ok <> ok
ORDER BY routine, finished_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read outcome changes: %w", err)
	}
	defer rows.Close()
	var out []store.OutcomeChange
	for rows.Next() {
		var (
			c     store.OutcomeChange
			state string
			end   int64
		)
		if err := rows.Scan(&c.Routine, &c.RunID, &state, &end); err != nil {
			return nil, fmt.Errorf("read outcome changes: %w", err)
		}
		c.State, c.FinishedAt = routine.State(state), fromMicros(end)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outcome changes: %w", err)
	}
	return out, nil
}
