package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	alertStatesSQL = `SELECT routine, alert, state, since FROM alert_state ORDER BY routine COLLATE "C", alert COLLATE "C"`
	alertEventCols = `id, routine, alert, state, condition, metric, value, threshold, runs, over, at, started_at, deliveries::text, done, attempts, next_try, holder`
	// alertRecordSQL appends the record of a transition made by the
	// statement "moved", in the same statement: no transition, no record.
	alertRecordSQL = `INSERT INTO alert_events (routine, alert, state, condition, metric, value, threshold, runs, over, at,
			started_at, deliveries, done, attempts, next_try, holder)
		SELECT $1, $2, $3, $6, $7, $8, $9, $10, $11, $4, $14, $12::jsonb, $13, 0, $4, '' FROM moved RETURNING id`
	// alertFromOKSQL moves an alert out of ok, which an alert without a
	// row is in: the row is inserted, or updated only while ok. Of
	// concurrent statements, the later waits for the first to commit and
	// then finds the state moved.
	alertFromOKSQL = `WITH moved AS (
			INSERT INTO alert_state (routine, alert, state, since) VALUES ($1, $2, $3, $4)
			ON CONFLICT (routine, alert) DO UPDATE SET state = excluded.state, since = excluded.since
			WHERE alert_state.state = 'ok' AND $5 = 'ok' -- $5, the state moved from, is ok here
			RETURNING 1)
		` + alertRecordSQL
	alertMoveSQL = `WITH moved AS (
			UPDATE alert_state SET state = $3, since = $4 WHERE routine = $1 AND alert = $2 AND state = $5 RETURNING 1)
		` + alertRecordSQL
	// alertClaimSQL takes the due records that are the oldest undelivered
	// ones of their alerts, skipping those another claim is taking.
	alertClaimSQL = `UPDATE alert_events SET holder = $1, next_try = $2, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM alert_events e WHERE NOT done AND next_try <= $3
				AND NOT EXISTS (SELECT 1 FROM alert_events o WHERE NOT o.done AND o.routine = e.routine AND o.alert = e.alert AND o.id < e.id)
			ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING ` + alertEventCols
	alertDeliveredSQL = `UPDATE alert_events SET deliveries = $1::jsonb, done = $2, next_try = $3, holder = '' WHERE id = $4 AND holder = $5`
)

// AlertStates returns the state of every alert that has a row.
func (s *Store) AlertStates(ctx context.Context) ([]*store.AlertState, error) {
	rows, err := s.pool.Query(ctx, alertStatesSQL)
	if err != nil {
		return nil, fmt.Errorf("alert states: %w", err)
	}
	defer rows.Close()
	var list []*store.AlertState
	for rows.Next() {
		var a store.AlertState
		if err := rows.Scan(&a.Routine, &a.Alert, &a.State, &a.Since); err != nil {
			return nil, fmt.Errorf("alert states: %w", err)
		}
		a.Since = a.Since.UTC()
		list = append(list, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alert states: %w", err)
	}
	return list, nil
}

// AlertTransition moves an alert's state by compare-and-set and appends
// the record of it, in one statement.
func (s *Store) AlertTransition(ctx context.Context, p *store.AlertTransitionParams) (*routine.AlertRecord, bool, error) {
	e, deliveries, err := store.NewAlertRecord(p)
	if err != nil {
		return nil, false, err
	}
	q := alertMoveSQL
	if p.From == routine.AlertOK {
		q = alertFromOKSQL
	}
	err = s.pool.QueryRow(ctx, q, p.Routine, p.Alert, p.To, e.At, p.From,
		e.When, e.Metric, e.Value, e.Threshold, e.Runs, int64(e.Over), deliveries, e.Done, e.StartedAt).Scan(&e.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("alert transition %s/%s: %w", p.Routine, p.Alert, err)
	}
	return e, true, nil
}

// AlertClaim takes the records due for delivery.
func (s *Store) AlertClaim(ctx context.Context, p *store.AlertClaimParams) ([]*routine.AlertRecord, error) {
	rows, err := s.pool.Query(ctx, alertClaimSQL, p.Holder, p.Now.Add(p.Lease), p.Now, max(p.Limit, 1))
	if err != nil {
		return nil, fmt.Errorf("claim alert records: %w", err)
	}
	list, err := scanAlertEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("claim alert records: %w", err)
	}
	// RETURNING gives the rows in no promised order.
	slices.SortFunc(list, func(a, b *routine.AlertRecord) int { return cmp.Compare(a.ID, b.ID) })
	return list, nil
}

// AlertDelivered writes the outcome of a delivery of a record.
func (s *Store) AlertDelivered(ctx context.Context, p *store.AlertDeliveredParams) error {
	deliveries, err := store.EncodeDeliveries(p.Deliveries)
	if err != nil {
		return fmt.Errorf("alert delivered: %w", err)
	}
	ct, err := s.pool.Exec(ctx, alertDeliveredSQL, deliveries, p.Done, p.NextTry, p.ID, p.Holder)
	switch {
	case err != nil:
		return fmt.Errorf("alert delivered %d: %w", p.ID, err)
	case ct.RowsAffected() == 0:
		return fmt.Errorf("alert delivered %d: not held by %s: %w", p.ID, p.Holder, routine.ErrConflict)
	}
	return nil
}

// AlertList returns records, newest first.
func (s *Store) AlertList(ctx context.Context, p *store.AlertListParams) ([]*routine.AlertRecord, error) {
	var w where
	if p.Routine != "" {
		w.add("routine = ?", p.Routine)
	}
	if !p.Since.IsZero() {
		w.add("at >= ?", p.Since)
	}
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	rows, err := s.pool.Query(ctx, "SELECT "+alertEventCols+" FROM alert_events"+w.sql()+" ORDER BY id DESC LIMIT "+w.arg(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list alert records: %w", err)
	}
	list, err := scanAlertEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list alert records: %w", err)
	}
	return list, nil
}

// scanAlertEvents reads rows of alertEventCols and closes them.
func scanAlertEvents(rows pgx.Rows) ([]*routine.AlertRecord, error) {
	defer rows.Close()
	var list []*routine.AlertRecord
	for rows.Next() {
		var (
			e          routine.AlertRecord
			over       int64
			deliveries string
		)
		if err := rows.Scan(&e.ID, &e.Routine, &e.Alert, &e.State, &e.When, &e.Metric, &e.Value, &e.Threshold, &e.Runs,
			&over, &e.At, &e.StartedAt, &deliveries, &e.Done, &e.Attempts, &e.NextTry, &e.Holder); err != nil {
			return nil, err
		}
		e.Over, e.At, e.StartedAt, e.NextTry = routine.Duration(over), e.At.UTC(), e.StartedAt.UTC(), e.NextTry.UTC()
		var err error
		if e.Deliveries, err = store.DecodeDeliveries(deliveries); err != nil {
			return nil, err
		}
		list = append(list, &e)
	}
	return list, rows.Err()
}
