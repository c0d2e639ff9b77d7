package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The rollups in ranges of starts, each of a width ($1, $2, $3 hold the
// widths and bounds), of the routines $4 (all when NULL): the triggers of
// 0006_rollups.sql keep them. Each range is a walk of the primary key.
const (
	rollupRangesSQL = `unnest($1::integer[], $2::timestamptz[], $3::timestamptz[]) AS g(width, since, until)`
	rollupsSQL      = `SELECT r.routine, r.start, r.succeeded, r.failed, r.dead, r.cancelled, r.duration, r.duration_sum,
			r.queue_wait, r.queue_wait_sum, r.cpu_ms, r.gb_seconds, r.bytes_sent, r.bytes_received
		FROM ` + rollupRangesSQL + ` JOIN rollups r ON r.width = g.width AND r.start >= g.since AND r.start < g.until
		WHERE $4::text[] IS NULL OR r.routine = ANY ($4)`
	rollupTokensSQL = `SELECT r.routine, r.start, r.model, r.input, r.output
		FROM ` + rollupRangesSQL + ` JOIN rollup_tokens r ON r.width = g.width AND r.start >= g.since AND r.start < g.until
		WHERE $4::text[] IS NULL OR r.routine = ANY ($4)`
)

// Stats sums the rollups of the runs that ended in [p.Since, p.Until), by
// routine: the rows and their tokens in one round trip, from one snapshot.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	plan := store.PlanStats(p)
	var (
		widths       []int32
		since, until []time.Time
		names        []string // nil: every routine
	)
	for _, r := range plan.Ranges {
		widths = append(widths, int32(r.Width.Seconds()))
		since, until = append(since, r.Since), append(until, r.Until)
	}
	if len(p.Routines) > 0 {
		names = p.Routines
	}
	b := plan.NewStatsBuilder()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var batch pgx.Batch
		batch.Queue(rollupsSQL, widths, since, until, names).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var r store.RollupRow
				if err := rows.Scan(&r.Routine, &r.Start, &r.Succeeded, &r.Failed, &r.Dead, &r.Cancelled, &r.Duration,
					&r.DurationSumUs, &r.QueueWait, &r.QueueWaitSumUs, &r.CPUMs, &r.GBSeconds, &r.BytesSent, &r.BytesReceived); err != nil {
					return err
				}
				b.AddRow(&r)
			}
			return rows.Err()
		})
		batch.Queue(rollupTokensSQL, widths, since, until, names).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					name, model string
					start       time.Time
					t           routine.Tokens
				)
				if err := rows.Scan(&name, &start, &model, &t.Input, &t.Output); err != nil {
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
