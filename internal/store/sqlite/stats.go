package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The rollups of a width in a range of starts, of the routines in the
// JSON list ?4 (all when NULL): the triggers of 0008_rollups.sql keep them.
const (
	rollupsSQL = `SELECT routine, start, succeeded, failed, dead, cancelled, duration, duration_sum,
			queue_wait, queue_wait_sum, cpu_ms, gb_seconds, bytes_sent, bytes_received
		FROM rollups WHERE width = ?1 AND start >= ?2 AND start < ?3
			AND (?4 IS NULL OR routine IN (SELECT value FROM json_each(?4)))`
	rollupTokensSQL = `SELECT routine, start, model, input, output
		FROM rollup_tokens WHERE width = ?1 AND start >= ?2 AND start < ?3
			AND (?4 IS NULL OR routine IN (SELECT value FROM json_each(?4)))`
)

// Stats sums the rollups of the runs that ended in [p.Since, p.Until), by
// routine, in one read transaction.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	plan := store.PlanStats(p)
	var names any
	if len(p.Routines) > 0 {
		b, err := json.Marshal(p.Routines)
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		names = string(b)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	b := plan.NewStatsBuilder()
	for _, r := range plan.Ranges {
		args := []any{int64(r.Width.Seconds()), r.Since.UnixMicro(), r.Until.UnixMicro(), names}
		if err := addRollups(ctx, tx, b, args); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if err := addTokens(ctx, tx, b, args); err != nil {
			return nil, fmt.Errorf("stats: tokens: %w", err)
		}
	}
	return b.Stats(), nil
}

func addRollups(ctx context.Context, tx *sql.Tx, b *store.StatsBuilder, args []any) error {
	rows, err := tx.QueryContext(ctx, rollupsSQL, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r         store.RollupRow
			start     int64
			dur, wait string
		)
		if err := rows.Scan(&r.Routine, &start, &r.Succeeded, &r.Failed, &r.Dead, &r.Cancelled, &dur, &r.DurationSumUs,
			&wait, &r.QueueWaitSumUs, &r.CPUMs, &r.GBSeconds, &r.BytesSent, &r.BytesReceived); err != nil {
			return err
		}
		r.Start = fromMicros(start)
		if r.Duration, err = counts(dur); err != nil {
			return fmt.Errorf("rollup of %s at %s: duration: %w", r.Routine, r.Start, err)
		}
		if r.QueueWait, err = counts(wait); err != nil {
			return fmt.Errorf("rollup of %s at %s: queue wait: %w", r.Routine, r.Start, err)
		}
		b.AddRow(&r)
	}
	return rows.Err()
}

func addTokens(ctx context.Context, tx *sql.Tx, b *store.StatsBuilder, args []any) error {
	rows, err := tx.QueryContext(ctx, rollupTokensSQL, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name, model string
			start       int64
			t           routine.Tokens
		)
		if err := rows.Scan(&name, &start, &model, &t.Input, &t.Output); err != nil {
			return err
		}
		b.AddTokens(name, fromMicros(start), model, t)
	}
	return rows.Err()
}

// counts reads the counts of a histogram, a JSON list of integers such as
// [0,3,1]: by hand, since a month of hourly rollups of many routines holds
// tens of thousands of them.
func counts(list string) ([]int64, error) {
	inner, ok1 := strings.CutPrefix(list, "[")
	inner, ok2 := strings.CutSuffix(inner, "]")
	if !ok1 || !ok2 || inner == "" {
		return nil, fmt.Errorf("not a list of counts: %q", list)
	}
	out := make([]int64, 0, len(store.HistogramBounds)+1)
	for f := range strings.SplitSeq(inner, ",") {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a list of counts: %q", list)
		}
		out = append(out, n)
	}
	return out, nil
}
