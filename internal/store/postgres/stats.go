package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// rollupWidths are the widths of the rollups that 0006_rollups.sql and
// 0009_rollup_days.sql keep.
var rollupWidths = []time.Duration{store.RollupMinute, store.RollupHour, store.RollupDay}

// The rollups of a width in a range of starts (the triggers of
// 0006_rollups.sql keep them), of the routines Stats names (onlySQL) when
// it does. A query has one of these per range of the plan, UNION ALL, each
// with its bounds as parameters, so that each is a walk of the primary
// key (or of rollups_routine): a join with the ranges as a list would
// leave the planner to guess how many rows each range holds.
const (
	rollupsSQL = `SELECT r.routine, r.start, r.succeeded, r.failed, r.dead, r.cancelled, r.duration::text, r.duration_sum,
			r.queue_wait::text, r.queue_wait_sum, r.cpu_ms, r.gb_seconds, r.bytes_sent, r.bytes_received, r.max_rss_kb
		FROM rollups r`
	rollupTokensSQL = `SELECT r.routine, r.start, r.model, r.input, r.output FROM rollup_tokens r`
	onlySQL         = ` AND r.routine = ANY ($1)`
)

// rangesSQL is query over each range of plan, UNION ALL, and its
// arguments; $1 is names when there are some. Each range is read in the
// order of order: that of the index it should walk. The rows of a width
// were written in the order of their starts, so that a walk of the
// primary key reads the heap in order, where one of rollups_routine would
// read a page per row.
func rangesSQL(query string, plan store.StatsPlan, names []string, order string) (string, []any) {
	var (
		w     where
		only  string
		parts []string
	)
	if len(names) > 0 {
		w.arg(names)
		only = onlySQL
	}
	for _, r := range plan.Ranges {
		parts = append(parts, "("+query+" WHERE r.width = "+w.arg(int32(r.Width.Seconds()))+
			" AND r.start >= "+w.arg(r.Since)+" AND r.start < "+w.arg(r.Until)+only+" ORDER BY "+order+")")
	}
	return strings.Join(parts, " UNION ALL "), w.args
}

// Stats sums the rollups of the runs that ended in [p.Since, p.Until), by
// routine: the rows and their tokens in one round trip, from one snapshot.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	plan := store.PlanStats(p, rollupWidths)
	if len(plan.Ranges) == 0 {
		return []*store.Stats{}, nil
	}
	order := "r.start, r.routine" // the primary key
	if len(p.Routines) > 0 {
		order = "r.routine, r.start" // rollups_routine
	}
	rowsSQL, rowsArgs := rangesSQL(rollupsSQL, plan, p.Routines, order)
	tokensSQL, tokensArgs := rangesSQL(rollupTokensSQL, plan, p.Routines, "r.start, r.routine, r.model")
	b := plan.NewStatsBuilder()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var batch pgx.Batch
		// A generic plan, which the statement cache would come to after a
		// few reads, guesses how many rows each range holds, and walks the
		// wrong index or starts parallel workers; the ranges' bounds are
		// what tells a range of days from a month of minutes.
		batch.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
		batch.Queue(rowsSQL, rowsArgs...).Query(func(rows pgx.Rows) error {
			size := len(store.HistogramBounds) + 1
			r := store.RollupRow{Duration: make([]int64, size), QueueWait: make([]int64, size)}
			// The histograms are read as text, by hand: pgx's decoding of
			// arrays cost most of the read (their binary form is four
			// times the size of their text). The destinations are made
			// once: a list of them per row is a month's thousands of
			// allocations.
			dst := []any{&r.Routine, &r.Start, &r.Succeeded, &r.Failed, &r.Dead, &r.Cancelled, nil,
				&r.DurationSumUs, nil, &r.QueueWaitSumUs, &r.CPUMs, &r.GBSeconds, &r.BytesSent, &r.BytesReceived, &r.MaxRSSKB}
			for rows.Next() {
				if err := rows.Scan(dst...); err != nil {
					return err
				}
				raw := rows.RawValues()
				if err := readCounts(r.Duration, raw[6]); err != nil {
					return fmt.Errorf("rollup of %s at %s: duration: %w", r.Routine, r.Start, err)
				}
				if err := readCounts(r.QueueWait, raw[8]); err != nil {
					return fmt.Errorf("rollup of %s at %s: queue wait: %w", r.Routine, r.Start, err)
				}
				b.AddRow(&r)
			}
			return rows.Err()
		})
		batch.Queue(tokensSQL, tokensArgs...).Query(func(rows pgx.Rows) error {
			var (
				name, model string
				start       time.Time
				t           routine.Tokens
			)
			dst := []any{&name, &start, &model, &t.Input, &t.Output}
			for rows.Next() {
				if err := rows.Scan(dst...); err != nil {
					return err
				}
				b.AddTokens(name, start, model, t)
			}
			return rows.Err()
		})
		return tx.SendBatch(ctx, &batch).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return b.Stats(), nil
}

// readCounts reads the text of a bigint[] of len(dst) counts ({1,2,3})
// into dst.
func readCounts(dst []int64, raw []byte) error {
	last := len(raw) - 1
	if last < 1 || raw[0] != '{' {
		return fmt.Errorf("not a list of counts: %q", raw)
	}
	i, n, digits := 0, int64(0), 0
	for k := 1; k <= last; k++ {
		c := raw[k]
		if c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
			digits++
			continue
		}
		if end := (c == ',' && k < last) || (c == '}' && k == last); !end || digits == 0 || i == len(dst) {
			return fmt.Errorf("not %d counts: %q", len(dst), raw)
		}
		dst[i] = n
		i, n, digits = i+1, 0, 0
	}
	if i != len(dst) {
		return fmt.Errorf("not %d counts: %q", len(dst), raw)
	}
	return nil
}
