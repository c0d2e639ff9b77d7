package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The rollups of a width in a range of starts (foldRunEnds keeps them),
// of the routines Stats names (routineIn) when it does: a walk of the
// primary key, or of rollups_routine.
const rollupTokensSQL = `SELECT routine, start, model, input, output
	FROM rollup_tokens WHERE width = ? AND start >= ? AND start < ?`

// rollupsSQL gives a row's integers (its peak memory, then rollupSums)
// as one text, in that order: a read of a month of hours reads tens of
// thousands of rows, and each column read costs more than its number.
var rollupsSQL = "SELECT routine, start, gb_seconds, max_rss_kb || ',' || " + strings.Join(rollupSums, " || ',' || ") +
	" FROM rollups WHERE width = ? AND start >= ? AND start < ?"

// statsWidths are the widths the rollups are kept in (the table
// rollup_widths: minutes and hours), as PlanStats takes them.
func (s *Store) statsWidths() []time.Duration {
	widths := make([]time.Duration, len(s.rollupWidths))
	for i, w := range s.rollupWidths {
		widths[i] = time.Duration(w) * time.Second
	}
	return widths
}

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
	plan := store.PlanStats(p, s.statsWidths())
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
		r       = newRollupRow()
		start   int64
		numbers sql.RawBytes
	)
	dst := append([]*int64{&r.MaxRSSKB}, rollupNumbers(&r)...)
	for rows.Next() {
		if err := rows.Scan(&r.Routine, &start, &r.GBSeconds, &numbers); err != nil {
			return err
		}
		r.Start = fromMicros(start)
		if err := parseNumbers(dst, numbers); err != nil {
			return fmt.Errorf("rollup of %s at %s: %w", r.Routine, r.Start, err)
		}
		b.AddRow(&r)
	}
	return rows.Err()
}

// newRollupRow is a rollup row of zeros with histograms of their size.
func newRollupRow() store.RollupRow {
	size := len(store.HistogramBounds) + 1
	return store.RollupRow{Duration: make([]int64, size), QueueWait: make([]int64, size)}
}

// rollupNumbers returns where the integers of a row (of newRollupRow) go,
// in the order of rollupSums.
func rollupNumbers(r *store.RollupRow) []*int64 {
	size := len(store.HistogramBounds) + 1
	dst := []*int64{&r.Succeeded, &r.Failed, &r.Dead, &r.Cancelled, &r.DurationSumUs, &r.QueueWaitSumUs,
		&r.CPUMs, &r.BytesSent, &r.BytesReceived}
	for i := range size {
		dst = append(dst, &r.Duration[i])
	}
	for i := range size {
		dst = append(dst, &r.QueueWait[i])
	}
	return dst
}

// parseNumbers reads the comma-separated integers of numbers into dst.
func parseNumbers(dst []*int64, numbers []byte) error {
	i := 0
	for f := range bytes.SplitSeq(numbers, []byte{','}) {
		if i == len(dst) {
			return fmt.Errorf("more than %d numbers: %q", len(dst), numbers)
		}
		// By hand: strconv would want a string of each.
		sign := int64(1)
		if len(f) > 1 && f[0] == '-' {
			sign, f = -1, f[1:]
		}
		var n int64
		for _, c := range f {
			if c < '0' || c > '9' {
				return fmt.Errorf("not a list of integers: %q", numbers)
			}
			n = n*10 + int64(c-'0')
		}
		if len(f) == 0 {
			return fmt.Errorf("not a list of integers: %q", numbers)
		}
		*dst[i] = sign * n
		i++
	}
	if i != len(dst) {
		return fmt.Errorf("%d numbers, want %d: %q", i, len(dst), numbers)
	}
	return nil
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
