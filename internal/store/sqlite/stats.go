package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The rollups of a width in a range of starts (the triggers of
// 0008_rollups.sql keep them), of the routines Stats names (routineIn)
// when it does: a walk of the primary key, or of rollups_routine.
const (
	rollupsSQL = `SELECT routine, start, succeeded, failed, dead, cancelled, duration, duration_sum,
			queue_wait, queue_wait_sum, cpu_ms, gb_seconds, bytes_sent, bytes_received
		FROM rollups WHERE width = ? AND start >= ? AND start < ?`
	rollupTokensSQL = `SELECT routine, start, model, input, output
		FROM rollup_tokens WHERE width = ? AND start >= ? AND start < ?`
)

// routineIn is the condition, and its arguments, that keeps the rows of
// the routines names; none when names is empty.
func routineIn(names []string) (string, []any) {
	if len(names) == 0 {
		return "", nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	return " AND routine IN (?" + strings.Repeat(", ?", len(names)-1) + ")", args
}

// Stats sums the rollups of the runs that ended in [p.Since, p.Until), by
// routine, in one read transaction.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	plan := store.PlanStats(p)
	cond, names := routineIn(p.Routines)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	b := plan.NewStatsBuilder()
	for _, r := range plan.Ranges {
		args := append([]any{int64(r.Width.Seconds()), r.Since.UnixMicro(), r.Until.UnixMicro()}, names...)
		if err := addRollups(ctx, tx, b, rollupsSQL+cond, args); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if err := addTokens(ctx, tx, b, rollupTokensSQL+cond, args); err != nil {
			return nil, fmt.Errorf("stats: tokens: %w", err)
		}
	}
	return b.Stats(), nil
}

func addRollups(ctx context.Context, tx *sql.Tx, b *store.StatsBuilder, query string, args []any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		r         store.RollupRow
		start     int64
		dur, wait string
	)
	for rows.Next() {
		if err := rows.Scan(&r.Routine, &start, &r.Succeeded, &r.Failed, &r.Dead, &r.Cancelled, &dur, &r.DurationSumUs,
			&wait, &r.QueueWaitSumUs, &r.CPUMs, &r.GBSeconds, &r.BytesSent, &r.BytesReceived); err != nil {
			return err
		}
		r.Start = fromMicros(start)
		if r.Duration, err = counts(r.Duration[:0], dur); err != nil {
			return fmt.Errorf("rollup of %s at %s: duration: %w", r.Routine, r.Start, err)
		}
		if r.QueueWait, err = counts(r.QueueWait[:0], wait); err != nil {
			return fmt.Errorf("rollup of %s at %s: queue wait: %w", r.Routine, r.Start, err)
		}
		b.AddRow(&r)
	}
	return rows.Err()
}

func addTokens(ctx context.Context, tx *sql.Tx, b *store.StatsBuilder, query string, args []any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
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

// counts appends to out the counts of a histogram, a JSON list of
// integers such as [0,3,1]: by hand, since a month of hourly rollups of
// many routines holds tens of thousands of them.
func counts(out []int64, list string) ([]int64, error) {
	inner, ok1 := strings.CutPrefix(list, "[")
	inner, ok2 := strings.CutSuffix(inner, "]")
	if !ok1 || !ok2 || inner == "" {
		return nil, fmt.Errorf("not a list of counts: %q", list)
	}
	for f := range strings.SplitSeq(inner, ",") {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a list of counts: %q", list)
		}
		out = append(out, n)
	}
	return out, nil
}
