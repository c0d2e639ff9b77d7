package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/store"
)

const (
	// workerBeatSQL drops the workers long dead, then adds a worker or
	// replaces what is known of it but when it started: one statement.
	workerBeatSQL = `WITH forgotten AS (
			DELETE FROM workers WHERE beat_at < COALESCE($5::timestamptz, now()) - $6::interval AND id <> $1
		)
		INSERT INTO workers (id, region, labels, slots, started_at, beat_at)
		VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), COALESCE($5::timestamptz, now()))
		ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, labels = EXCLUDED.labels, slots = EXCLUDED.slots,
			beat_at = EXCLUDED.beat_at`
	workerListSQL = `SELECT id, region, labels, slots, started_at, beat_at FROM workers
		WHERE beat_at > COALESCE($1::timestamptz, now()) - $2::interval ORDER BY id COLLATE "C"`
	workerLeaveSQL = `DELETE FROM workers WHERE id = $1`
)

// WorkerBeat records that a worker is alive, and drops the workers long
// dead. With DatabaseClock, the database's clock times the beat.
func (s *Store) WorkerBeat(ctx context.Context, p *store.WorkerBeatParams) error {
	if _, err := s.pool.Exec(ctx, workerBeatSQL, p.ID, p.Placement.Region, labelsArg(p.Placement.Labels), p.Slots,
		s.now(p.Now), store.WorkerForget); err != nil {
		return fmt.Errorf("worker beat %s: %w", p.ID, err)
	}
	return nil
}

// WorkerList returns the live workers.
func (s *Store) WorkerList(ctx context.Context, now time.Time) ([]*store.Worker, error) {
	rows, err := s.pool.Query(ctx, workerListSQL, s.now(now), store.WorkerTimeout)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	workers, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Worker, error) {
		var w store.Worker
		if err := row.Scan(&w.ID, &w.Placement.Region, &w.Placement.Labels, &w.Slots, &w.StartedAt, &w.BeatAt); err != nil {
			return nil, err
		}
		if len(w.Placement.Labels) == 0 {
			w.Placement.Labels = nil
		}
		w.StartedAt, w.BeatAt = w.StartedAt.UTC(), w.BeatAt.UTC()
		return &w, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return workers, nil
}

// WorkerLeave drops a worker that stopped.
func (s *Store) WorkerLeave(ctx context.Context, id string) (bool, error) {
	ct, err := s.pool.Exec(ctx, workerLeaveSQL, id)
	if err != nil {
		return false, fmt.Errorf("worker leave %s: %w", id, err)
	}
	return ct.RowsAffected() > 0, nil
}
