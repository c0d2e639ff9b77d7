package postgres

import (
	"context"
	"fmt"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// RunOutcomeChanges reads the runs that ended in the range once, in the
// database: a window compares each run's outcome with its routine's
// previous one, and only the changes come back (ties in the order of
// ids, the order the runs were created in).
func (s *Store) RunOutcomeChanges(ctx context.Context, p *store.RunOutcomeChangesParams) ([]store.OutcomeChange, error) {
	var w where
	w.add("finished_at >= ?", p.Since)
	w.add("finished_at < ?", p.Until)
	w.conds = append(w.conds, "state IN ('succeeded', 'failed', 'dead')")
	if len(p.Routines) > 0 {
		w.add("routine = ANY(?)", p.Routines)
	}
	rows, err := s.pool.Query(ctx, `
SELECT routine, state, finished_at FROM (
    SELECT routine, id, state, finished_at, state = 'succeeded' AS ok,
        lag(state = 'succeeded') OVER (PARTITION BY routine ORDER BY finished_at, id) AS prev_ok
    FROM runs`+w.sql()+`
) changes WHERE prev_ok IS NULL OR prev_ok <> ok
ORDER BY routine, finished_at, id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("read outcome changes: %w", err)
	}
	defer rows.Close()
	var out []store.OutcomeChange
	for rows.Next() {
		var (
			c     store.OutcomeChange
			state string
		)
		if err := rows.Scan(&c.Routine, &state, &c.FinishedAt); err != nil {
			return nil, fmt.Errorf("read outcome changes: %w", err)
		}
		c.State, c.FinishedAt = routine.State(state), c.FinishedAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outcome changes: %w", err)
	}
	return out, nil
}
