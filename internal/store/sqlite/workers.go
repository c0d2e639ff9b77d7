package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

const (
	// workerBeatSQL adds a worker, or replaces what is known of it but
	// when it started.
	workerBeatSQL = `INSERT INTO workers (id, region, labels, slots, started_at, beat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
		ON CONFLICT (id) DO UPDATE SET region = excluded.region, labels = excluded.labels, slots = excluded.slots,
			beat_at = excluded.beat_at`
	workerForgetSQL = `DELETE FROM workers WHERE beat_at < ?`
	workerListSQL   = `SELECT id, region, labels, slots, started_at, beat_at FROM workers WHERE beat_at > ? ORDER BY id`
	workerLeaveSQL  = `DELETE FROM workers WHERE id = ?`
)

// WorkerBeat records that a worker is alive, and drops the workers long
// dead.
func (s *Store) WorkerBeat(ctx context.Context, p *store.WorkerBeatParams) error {
	labels, err := jsonText(p.Placement.Labels, len(p.Placement.Labels) == 0)
	if err != nil {
		return fmt.Errorf("worker beat %s: %w", p.ID, err)
	}
	err = s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := p.Now.UnixMicro()
		if _, err := tx.ExecContext(ctx, workerBeatSQL, p.ID, p.Placement.Region, labels, p.Slots, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, workerForgetSQL, p.Now.Add(-store.WorkerForget).UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("worker beat %s: %w", p.ID, err)
	}
	return nil
}

// WorkerList returns the live workers.
func (s *Store) WorkerList(ctx context.Context, now time.Time) ([]*store.Worker, error) {
	rows, err := s.r.QueryContext(ctx, workerListSQL, now.Add(-store.WorkerTimeout).UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer rows.Close()
	var workers []*store.Worker
	for rows.Next() {
		var (
			w             store.Worker
			labels        sql.NullString
			started, beat int64
		)
		if err := rows.Scan(&w.ID, &w.Placement.Region, &labels, &w.Slots, &started, &beat); err != nil {
			return nil, fmt.Errorf("list workers: %w", err)
		}
		if err := unmarshalNull(labels, &w.Placement.Labels); err != nil {
			return nil, fmt.Errorf("list workers: %s: labels: %w", w.ID, err)
		}
		w.StartedAt, w.BeatAt = fromMicros(started), fromMicros(beat)
		workers = append(workers, &w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return workers, nil
}

// WorkerLeave drops a worker that stopped.
func (s *Store) WorkerLeave(ctx context.Context, id string) (bool, error) {
	var n int64
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, workerLeaveSQL, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("worker leave %s: %w", id, err)
	}
	return n > 0, nil
}
