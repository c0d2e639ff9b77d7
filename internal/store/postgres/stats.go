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

// The rollups of a width in a range of starts (the triggers of
// 0006_rollups.sql keep them), of the routines Stats names (onlySQL) when
// it does. A query has one of these per range of the plan, UNION ALL, each
// with its bounds as parameters, so that each is a walk of the primary
// key (or of rollups_routine): a join with the ranges as a list would
// leave the planner to guess how many rows each range holds.
const (
	rollupsSQL = `SELECT r.routine, r.start, r.succeeded, r.failed, r.dead, r.cancelled, r.duration, r.duration_sum,
			r.queue_wait, r.queue_wait_sum, r.cpu_ms, r.gb_seconds, r.bytes_sent, r.bytes_received
		FROM rollups r`
	rollupTokensSQL = `SELECT r.routine, r.start, r.model, r.input, r.output FROM rollup_tokens r`
	onlySQL         = ` AND r.routine = ANY ($1)`
)

// rangesSQL is query over each range of plan, UNION ALL, and its
// arguments; $1 is names when there are some.
func rangesSQL(query string, plan store.StatsPlan, names []string) (string, []any) {
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
		parts = append(parts, query+" WHERE r.width = "+w.arg(int32(r.Width.Seconds()))+
			" AND r.start >= "+w.arg(r.Since)+" AND r.start < "+w.arg(r.Until)+only)
	}
	return strings.Join(parts, " UNION ALL "), w.args
}

// Stats sums the rollups of the runs that ended in [p.Since, p.Until), by
// routine: the rows and their tokens in one round trip, from one snapshot.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	plan := store.PlanStats(p)
	if len(plan.Ranges) == 0 {
		return []*store.Stats{}, nil
	}
	rowsSQL, rowsArgs := rangesSQL(rollupsSQL, plan, p.Routines)
	tokensSQL, tokensArgs := rangesSQL(rollupTokensSQL, plan, p.Routines)
	b := plan.NewStatsBuilder()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var batch pgx.Batch
		batch.Queue(rowsSQL, rowsArgs...).Query(func(rows pgx.Rows) error {
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
		batch.Queue(tokensSQL, tokensArgs...).Query(func(rows pgx.Rows) error {
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
