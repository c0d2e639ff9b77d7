package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	alertStatesSQL = `SELECT routine, alert, state, since FROM alert_state ORDER BY routine, alert`
	// alertFromOKSQL moves an alert out of ok, which an alert without a
	// row is in: the row is inserted, or updated only while ok.
	alertFromOKSQL = `INSERT INTO alert_state (routine, alert, state, since) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (routine, alert) DO UPDATE SET state = excluded.state, since = excluded.since
		WHERE alert_state.state = 'ok'`
	alertMoveSQL        = `UPDATE alert_state SET state = ?3, since = ?4 WHERE routine = ?1 AND alert = ?2 AND state = ?5`
	alertEventInsertSQL = `INSERT INTO alert_events (routine, alert, state, condition, metric, value, threshold, runs, over, at,
			started_at, deliveries, done, attempts, next_try, holder)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, '') RETURNING id`
	alertEventCols = `id, routine, alert, state, condition, metric, value, threshold, runs, over, at, started_at, deliveries, done, attempts, next_try, holder`
	// alertClaimSQL takes the due records that are the oldest undelivered
	// ones of their alerts.
	alertClaimSQL = `UPDATE alert_events SET holder = ?1, next_try = ?2, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM alert_events e WHERE done = 0 AND next_try <= ?3
				AND NOT EXISTS (SELECT 1 FROM alert_events o WHERE o.done = 0 AND o.routine = e.routine AND o.alert = e.alert AND o.id < e.id)
			ORDER BY id LIMIT ?4)
		RETURNING ` + alertEventCols
	alertDeliveredSQL = `UPDATE alert_events SET deliveries = ?, done = ?, next_try = ?, holder = '' WHERE id = ? AND holder = ?`
)

// AlertStates returns the state of every alert that has a row.
func (s *Store) AlertStates(ctx context.Context) ([]*store.AlertState, error) {
	rows, err := s.r.QueryContext(ctx, alertStatesSQL)
	if err != nil {
		return nil, fmt.Errorf("alert states: %w", err)
	}
	defer rows.Close()
	var list []*store.AlertState
	for rows.Next() {
		var (
			a     store.AlertState
			since int64
		)
		if err := rows.Scan(&a.Routine, &a.Alert, &a.State, &since); err != nil {
			return nil, fmt.Errorf("alert states: %w", err)
		}
		a.Since = fromMicros(since)
		list = append(list, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alert states: %w", err)
	}
	return list, nil
}

// AlertTransition moves an alert's state by compare-and-set and appends
// the record of it, in one transaction.
func (s *Store) AlertTransition(ctx context.Context, p *store.AlertTransitionParams) (*routine.AlertRecord, bool, error) {
	e, deliveries, err := store.NewAlertRecord(p)
	if err != nil {
		return nil, false, err
	}
	var won bool
	err = s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var res sql.Result
		var err error
		if p.From == routine.AlertOK {
			res, err = tx.ExecContext(ctx, alertFromOKSQL, p.Routine, p.Alert, p.To, e.At.UnixMicro())
		} else {
			res, err = tx.ExecContext(ctx, alertMoveSQL, p.Routine, p.Alert, p.To, e.At.UnixMicro(), p.From)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if won = n > 0; err != nil || !won {
			return err
		}
		return tx.QueryRowContext(ctx, alertEventInsertSQL, e.Routine, e.Alert, e.State, e.When, e.Metric, e.Value, e.Threshold,
			e.Runs, int64(e.Over), e.At.UnixMicro(), e.StartedAt.UnixMicro(), deliveries, e.Done, e.NextTry.UnixMicro()).Scan(&e.ID)
	})
	if err != nil {
		return nil, false, fmt.Errorf("alert transition %s/%s: %w", p.Routine, p.Alert, err)
	}
	if !won {
		return nil, false, nil
	}
	return e, true, nil
}

// AlertClaim takes the records due for delivery.
func (s *Store) AlertClaim(ctx context.Context, p *store.AlertClaimParams) ([]*routine.AlertRecord, error) {
	var list []*routine.AlertRecord
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		list = nil
		rows, err := tx.QueryContext(ctx, alertClaimSQL, p.Holder, p.Now.Add(p.Lease).UnixMicro(), p.Now.UnixMicro(), max(p.Limit, 1))
		if err != nil {
			return err
		}
		list, err = scanAlertEvents(rows)
		return err
	})
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
	var n int64
	err = s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, alertDeliveredSQL, deliveries, p.Done, p.NextTry.UnixMicro(), p.ID, p.Holder)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("alert delivered %d: %w", p.ID, err)
	case n == 0:
		return fmt.Errorf("alert delivered %d: not held by %s: %w", p.ID, p.Holder, routine.ErrConflict)
	}
	return nil
}

// AlertList returns records, newest first.
func (s *Store) AlertList(ctx context.Context, p *store.AlertListParams) ([]*routine.AlertRecord, error) {
	var (
		where []string
		args  []any
	)
	if p.Routine != "" {
		where = append(where, "routine = ?")
		args = append(args, p.Routine)
	}
	if !p.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, p.Since.UnixMicro())
	}
	q := "SELECT " + alertEventCols + " FROM alert_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, cmpLimit(p.Limit))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alert records: %w", err)
	}
	list, err := scanAlertEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list alert records: %w", err)
	}
	return list, nil
}

// cmpLimit is a LIMIT of SQLite: -1, none, for 0.
func cmpLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// scanAlertEvents reads rows of alertEventCols and closes them.
func scanAlertEvents(rows *sql.Rows) ([]*routine.AlertRecord, error) {
	defer rows.Close()
	var list []*routine.AlertRecord
	for rows.Next() {
		var (
			e                       routine.AlertRecord
			over, at, started, next int64
			deliveries              string
		)
		if err := rows.Scan(&e.ID, &e.Routine, &e.Alert, &e.State, &e.When, &e.Metric, &e.Value, &e.Threshold, &e.Runs,
			&over, &at, &started, &deliveries, &e.Done, &e.Attempts, &next, &e.Holder); err != nil {
			return nil, err
		}
		e.Over, e.At, e.StartedAt, e.NextTry = routine.Duration(over), fromMicros(at), fromMicros(started), fromMicros(next)
		var err error
		if e.Deliveries, err = store.DecodeDeliveries(deliveries); err != nil {
			return nil, err
		}
		list = append(list, &e)
	}
	return list, rows.Err()
}
