package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The queue is the runs table. A claim is one statement, routines_claim
// (0001_init.sql says why it never gives a run twice nor runs a routine
// past its ceiling; 0003_placement.sql adds placements and reservations,
// 0005_claim_speed.sql how it is fast, 0013_namespace_ceilings.sql the
// ceilings of groups). Each statement that judges leases takes $now
// from Store.now: the caller's clock, or NULL for the database's.
const (
	claimSQL     = `SELECT * FROM routines_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	heartbeatSQL = `UPDATE runs SET lease_until = COALESCE($1::timestamptz, now()) + $2::interval
		WHERE state = 'running' AND worker = $3 AND lease_until IS NOT NULL AND ($4::text[] IS NULL OR id = ANY($4))
		RETURNING id, cancel_requested_at IS NOT NULL`
	// cancelRequestSQL ends run $1 cancelled when it is queued, with the
	// steps it left unfinished (waiting for a retry, cut short by a
	// shutdown), or records the cancel of it when it is running (keeping
	// the first request's time) and notifies its holder; the two updates
	// of the run see the same row and only one can match it.
	cancelRequestSQL = `WITH queued AS (
			UPDATE runs SET state = 'cancelled', finished_at = $2, error = $3
			WHERE id = $1 AND state = 'queued' RETURNING id
		), steps AS (
			UPDATE step_runs SET state = 'cancelled', finished_at = $2
			WHERE run_id = $1 AND state IN ('queued', 'running') AND EXISTS (SELECT 1 FROM queued)
		), running AS (
			UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $2)
			WHERE id = $1 AND state = 'running' RETURNING id
		)
		SELECT pg_notify('` + cancelChannel + `', id) FROM running`
	holdersSQL = `SELECT DISTINCT worker FROM runs WHERE state = 'running' AND lease_until IS NOT NULL`
	expireSQL  = `UPDATE runs SET lease_until = COALESCE($1::timestamptz, now())
		WHERE state = 'running' AND worker = $2 AND lease_until > COALESCE($1::timestamptz, now())`
	requeueSQL = `UPDATE runs SET state = 'queued', not_before = COALESCE($2::timestamptz, now() + $3::interval),
			worker = '', lease_until = NULL
		WHERE id = $1 AND state = 'running' AND worker = $4`
	runExistsSQL = `SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)`
)

var errNoWorker = errors.New("worker is required")

// RunClaim takes up to p.Limit claimable runs off the queue, oldest first,
// in one statement.
func (s *Store) RunClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	if p.Worker == "" {
		return nil, fmt.Errorf("claim run: %w", errNoWorker)
	}
	names, ceilings := []string{}, []int32{}
	for name, n := range p.Ceilings {
		if n > 0 {
			names, ceilings = append(names, name), append(ceilings, int32(n))
		}
	}
	reserved, slots := []string{}, []int32{}
	for name, n := range p.Reserved {
		if n > 0 {
			reserved, slots = append(reserved, name), append(slots, int32(n))
		}
	}
	grouped, groups, groupCeilings := []string{}, []string{}, []int32{}
	for name, g := range p.Groups {
		if n := p.GroupCeilings[g]; n > 0 {
			grouped, groups, groupCeilings = append(grouped, name), append(groups, g), append(groupCeilings, int32(n))
		}
	}
	var (
		region *string // NULL: no placement
		labels []string
	)
	if pl := p.Placement; pl != nil {
		region, labels = &pl.Region, labelsArg(pl.Labels)
	}
	rows, err := s.pool.Query(ctx, claimSQL, p.Worker, s.now(p.Now), p.Lease, int32(max(1, p.Limit)),
		names, ceilings, append([]string{}, p.Exclude...), region, labels, reserved, slots, store.WorkerTimeout,
		grouped, groups, groupCeilings)
	if err != nil {
		return nil, fmt.Errorf("claim run: %w", err)
	}
	defer rows.Close()
	var runs []*store.ClaimedRun
	for rows.Next() {
		c := &store.ClaimedRun{}
		if c.Run, err = scanRun(rows, &c.TakenFrom); err != nil {
			return nil, fmt.Errorf("claim run: %w", err)
		}
		runs = append(runs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim run: %w", err)
	}
	return runs, nil
}

// RunHeartbeat extends the leases of the runs a worker holds.
func (s *Store) RunHeartbeat(ctx context.Context, p *store.RunHeartbeatParams) (*store.Heartbeat, error) {
	if p.Worker == "" {
		return nil, fmt.Errorf("heartbeat: %w", errNoWorker)
	}
	var ids []string // nil: every run of the worker
	if len(p.IDs) > 0 {
		ids = slices.Clone(p.IDs)
	}
	rows, err := s.pool.Query(ctx, heartbeatSQL, s.now(p.Now), p.Lease, p.Worker, ids)
	if err != nil {
		return nil, fmt.Errorf("heartbeat %s: %w", p.Worker, err)
	}
	defer rows.Close()
	hb := &store.Heartbeat{}
	var id string
	var cancel bool
	_, err = pgx.ForEachRow(rows, []any{&id, &cancel}, func() error {
		hb.Add(id, cancel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat %s: %w", p.Worker, err)
	}
	return hb, nil
}

// RunCancelRequest ends a queued run cancelled, or records the cancel of
// a running one and notifies the listeners of cancelChannel.
func (s *Store) RunCancelRequest(ctx context.Context, p *store.RunCancelRequestParams) (*routine.Run, error) {
	errJSON, err := jsonText(p.Error(), false)
	if err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", p.ID, err)
	}
	if _, err := s.pool.Exec(ctx, cancelRequestSQL, p.ID, p.Now, errJSON); err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", p.ID, err)
	}
	run, err := s.runGet(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", p.ID, err)
	}
	return run, nil
}

// RunHolders lists the workers that hold leased running runs.
func (s *Store) RunHolders(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, holdersSQL)
	if err != nil {
		return nil, fmt.Errorf("list run holders: %w", err)
	}
	workers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list run holders: %w", err)
	}
	return workers, nil
}

// RunExpire ends the leases of a dead worker's runs. The trigger
// runs_wake_update wakes the listeners.
func (s *Store) RunExpire(ctx context.Context, p *store.RunExpireParams) (int, error) {
	if p.Worker == "" {
		return 0, fmt.Errorf("expire leases: %w", errNoWorker)
	}
	ct, err := s.pool.Exec(ctx, expireSQL, s.now(p.Now), p.Worker)
	if err != nil {
		return 0, fmt.Errorf("expire leases of %s: %w", p.Worker, err)
	}
	return int(ct.RowsAffected()), nil
}

// RunRequeue puts a running run back in the queue. The trigger
// runs_wake_update wakes the listeners.
func (s *Store) RunRequeue(ctx context.Context, p *store.RunRequeueParams) error {
	if p.Worker == "" {
		return fmt.Errorf("requeue run %s: %w", p.ID, errNoWorker)
	}
	notBefore, delay := s.later(p.NotBefore, p.Now)
	ct, err := s.pool.Exec(ctx, requeueSQL, p.ID, notBefore, delay, p.Worker)
	if err != nil {
		return fmt.Errorf("requeue run %s: %w", p.ID, err)
	}
	if ct.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, runExistsSQL, p.ID).Scan(&exists); err != nil {
		return fmt.Errorf("requeue run %s: %w", p.ID, err)
	}
	if !exists {
		return fmt.Errorf("requeue run %s: %w", p.ID, routine.ErrNotFound)
	}
	return fmt.Errorf("requeue run %s: not running or not held by %s: %w", p.ID, p.Worker, routine.ErrConflict)
}

// RunCount counts runs by state.
func (s *Store) RunCount(ctx context.Context, p *store.RunCountParams) (map[routine.State]int, error) {
	var w where
	if len(p.States) > 0 {
		w.conds = append(w.conds, "state IN "+stateList(p.States))
	}
	if p.Routine != "" {
		w.add("routine = ?", p.Routine)
	}
	if p.Routines != nil {
		w.add("routine = ANY(?)", p.Routines)
	}
	rows, err := s.pool.Query(ctx, "SELECT state, count(*) FROM runs"+w.sql()+" GROUP BY state", w.args...)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	counts := map[routine.State]int{}
	for rows.Next() {
		var (
			state string
			n     int
		)
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count runs: %w", err)
		}
		counts[routine.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	return counts, nil
}

// stateList is states as a list of SQL literals, such as ('queued'),
// written into a statement rather than bound, so that the planner may use
// the partial indexes whose predicate names a state (runs_queued, of a
// namespace's queued runs).
func stateList(ss []routine.State) string {
	lits := make([]string, len(ss))
	for i, st := range ss {
		lits[i] = "'" + strings.ReplaceAll(string(st), "'", "''") + "'"
	}
	return "(" + strings.Join(lits, ", ") + ")"
}
