package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Alerts keeps the state of the routines' alerts (routine.yaml alerts:)
// and the record of their firings and clearings. The state moves by
// compare-and-set, so that of the evaluators of several servers exactly
// one records each transition; the record's notifications are claimed
// the same way, so that exactly one delivers them, and one that fails is
// tried again later rather than lost.
type Alerts interface {
	// AlertStates returns the state of every alert that ever fired, by
	// routine and alert name. An alert without a row is routine.AlertOK.
	AlertStates(ctx context.Context) ([]*AlertState, error)
	// AlertTransition moves alert p.Alert of p.Routine from p.From to
	// p.To (routine.AlertOK matches an alert without a row too) and appends the
	// record of it, p.Record, in the same transaction; it returns the
	// record, with its ID, and true. When the alert is not in p.From (a
	// concurrent caller moved it first), nothing is written and it
	// returns false.
	AlertTransition(ctx context.Context, p *AlertTransitionParams) (*routine.AlertRecord, bool, error)
	// AlertClaim takes up to p.Limit records (1 when 0) whose
	// notifications are due: not Done, NextTry at or before p.Now, and
	// the oldest record not Done of their alert, so that an alert's
	// notifications go out in order. Each taken record gets Holder
	// p.Holder and NextTry p.Now + p.Lease (taken by no other claim
	// meanwhile) and Attempts one more; they come back oldest first.
	AlertClaim(ctx context.Context, p *AlertClaimParams) ([]*routine.AlertRecord, error)
	// AlertDelivered writes the outcome of delivering the record p.ID:
	// its Deliveries, Done, and the NextTry of another try when not
	// done. A record that p.Holder does not hold (its claim ran out and
	// another took it) is left alone, and the error wraps ErrConflict.
	AlertDelivered(ctx context.Context, p *AlertDeliveredParams) error
	// AlertList returns records, newest first.
	AlertList(ctx context.Context, p *AlertListParams) ([]*routine.AlertRecord, error)
}

// AlertState is where an alert stands.
type AlertState struct {
	Routine string
	Alert   string // its name
	State   string // routine.AlertOK or routine.AlertFiring
	Since   time.Time
}

// AlertTransitionParams are one transition and its record. Record's ID,
// Done, Attempts, NextTry and Holder are the store's: the record is due
// at once (NextTry Record.At), unless it has no Deliveries (Done).
type AlertTransitionParams struct {
	Routine, Alert string
	From, To       string
	Record         *routine.AlertRecord
}

// AlertClaimParams say who claims records to deliver, when, and for how
// long.
type AlertClaimParams struct {
	Holder string
	Now    time.Time
	Lease  time.Duration
	Limit  int
}

// AlertDeliveredParams are the outcome of one delivery of a record.
type AlertDeliveredParams struct {
	ID         int64
	Holder     string
	Deliveries []routine.AlertDelivery
	Done       bool
	NextTry    time.Time // when not Done
}

// AlertListParams filter AlertList. Zero values do not filter.
type AlertListParams struct {
	Routine string
	Since   time.Time // records at or after
	Limit   int       // the newest Limit; 0 = all
}

// EncodeDeliveries is the JSON a driver stores a record's deliveries as:
// times in UTC to the microsecond, as every time of the store; none is [].
func EncodeDeliveries(ds []routine.AlertDelivery) (string, error) {
	out := make([]routine.AlertDelivery, len(ds))
	for i, d := range ds {
		d.At = d.At.UTC().Truncate(time.Microsecond)
		out[i] = d
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// DecodeDeliveries reads what EncodeDeliveries wrote; none is nil.
func DecodeDeliveries(s string) ([]routine.AlertDelivery, error) {
	var ds []routine.AlertDelivery
	if err := json.Unmarshal([]byte(s), &ds); err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	for i := range ds {
		ds[i].At = ds[i].At.UTC()
	}
	if len(ds) == 0 {
		return nil, nil
	}
	return ds, nil
}

// NewAlertRecord is the record a driver writes for the transition p: p's
// record as the store keeps it (its routine, alert and state from p,
// times in UTC to the microsecond, due at once unless it has nothing to
// deliver), and its deliveries as EncodeDeliveries writes them.
func NewAlertRecord(p *AlertTransitionParams) (*routine.AlertRecord, string, error) {
	e := *p.Record
	e.Routine, e.Alert, e.State = p.Routine, p.Alert, p.To
	e.At, e.StartedAt = e.At.UTC().Truncate(time.Microsecond), e.StartedAt.UTC().Truncate(time.Microsecond)
	e.Done, e.Attempts, e.NextTry, e.Holder = len(e.Deliveries) == 0, 0, e.At, ""
	deliveries, err := EncodeDeliveries(e.Deliveries)
	if err != nil {
		return nil, "", fmt.Errorf("alert transition: %w", err)
	}
	e.Deliveries, err = DecodeDeliveries(deliveries)
	return &e, deliveries, err
}
