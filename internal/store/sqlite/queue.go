package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The queue is the runs table: a claim is one write of a BEGIN IMMEDIATE
// transaction (the writer connection's _txlock), so it holds SQLite's
// write lock from its first read to its commit, and no other goroutine or
// process can claim in between.
const (
	// claimBusySQL lists the routines' counts of running runs that hold a
	// slot: those with a live lease, and those with none (run in the
	// foreground). Running runs are few; the walk is of the state prefix
	// of runs_claim.
	claimBusySQL = `SELECT routine, COUNT(*) FROM runs
		WHERE state = 'running' AND (lease_until IS NULL OR lease_until > ?)
		GROUP BY routine`
	// claimPickSQL picks the oldest claimable run whose routine is not in
	// the JSON list ?2 and whose requirements the worker meets, with the
	// worker that held it: the oldest due queued run or the oldest running
	// run whose lease expired, whichever was queued first. Each branch
	// walks runs_claim in order and stops at its first match.
	claimPickSQL = `SELECT id, worker FROM (
			SELECT id, queued_at, worker FROM (
				SELECT id, queued_at, '' AS worker FROM runs
				WHERE state = 'queued' AND (not_before IS NULL OR not_before <= ?1)
					AND routine NOT IN (SELECT value FROM json_each(?2)) AND ` + placedSQL + ` AND ` + onlySQL + `
				ORDER BY queued_at, id LIMIT 1)
			UNION ALL
			SELECT id, queued_at, worker FROM (
				SELECT id, queued_at, worker FROM runs
				WHERE state = 'running' AND lease_until <= ?1
					AND routine NOT IN (SELECT value FROM json_each(?2)) AND ` + placedSQL + ` AND ` + onlySQL + `
				ORDER BY queued_at, id LIMIT 1))
		ORDER BY queued_at, id LIMIT 1`
	// onlySQL holds for a run of a routine in the JSON list ?5, or of any
	// when ?5 is NULL: the routines with an unmet reservation, when the
	// fleet has no slot free beyond the reservations.
	onlySQL = `(?5 IS NULL OR routine IN (SELECT value FROM json_each(?5)))`
	// fleetSlotsSQL sums the slots of the live workers.
	fleetSlotsSQL = `SELECT COALESCE(SUM(slots), 0) FROM workers WHERE beat_at > ?`
	// placedSQL holds for a run whose requirements a worker of region ?3
	// and labels ?4 (a JSON list) meets; any run when ?3 is NULL (no
	// placement). A run that requires nothing (req_labels NULL) is judged
	// without reading its labels.
	placedSQL = `(?3 IS NULL OR ((req_region = '' OR req_region = ?3) AND (req_labels IS NULL OR NOT EXISTS (
			SELECT 1 FROM json_each(req_labels) need WHERE need.value NOT IN (SELECT value FROM json_each(?4))))))`
	// claimTakeSQL leases a run to worker ?1 until ?2, and records the
	// worker's region ?3 as where it runs.
	claimTakeSQL = `UPDATE runs SET state = 'running', worker = ?1, lease_until = ?2, not_before = NULL, region = ?3
		WHERE id = ?4 RETURNING ` + runColumns
	// heartbeatSQL extends the leases of a worker's runs; ?4, when not
	// NULL, is a JSON list of the only ids to extend.
	heartbeatSQL = `UPDATE runs SET lease_until = ?1
		WHERE state = 'running' AND worker = ?2 AND lease_until IS NOT NULL
			AND (?3 IS NULL OR id IN (SELECT value FROM json_each(?3)))
		RETURNING id, cancel_requested_at IS NOT NULL`
	// cancelQueuedSQL ends a queued run cancelled; cancelRunningSQL
	// records the cancel of a running one, keeping the first request's time.
	cancelQueuedSQL = `UPDATE runs SET state = 'cancelled', finished_at = ?2, error = ?3
		WHERE id = ?1 AND state = 'queued'`
	cancelRunningSQL = `UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, ?2)
		WHERE id = ?1 AND state = 'running'`
	// cancelStepsSQL ends cancelled the steps a queued run left unfinished
	// (one waiting for its retry, one cut short by a shutdown).
	cancelStepsSQL = `UPDATE step_runs SET state = 'cancelled', finished_at = ?2
		WHERE run_id = ?1 AND state IN ('queued', 'running')`
	// holdersSQL lists the workers of leased running runs: few rows, on
	// the state prefix of runs_claim.
	holdersSQL = `SELECT DISTINCT worker FROM runs WHERE state = 'running' AND lease_until IS NOT NULL`
	expireSQL  = `UPDATE runs SET lease_until = ?1
		WHERE state = 'running' AND worker = ?2 AND lease_until > ?1`
	requeueSQL = `UPDATE runs SET state = 'queued', not_before = ?, worker = '', lease_until = NULL
		WHERE id = ? AND state = 'running' AND worker = ?`
	runExistsSQL = `SELECT 1 FROM runs WHERE id = ?`
)

var errNoWorker = errors.New("worker is required")

// RunClaim takes up to p.Limit claimable runs off the queue, oldest first,
// in one transaction.
func (s *Store) RunClaim(ctx context.Context, p *store.RunClaimParams) ([]*store.ClaimedRun, error) {
	if p.Worker == "" {
		return nil, fmt.Errorf("claim run: %w", errNoWorker)
	}
	// The worker's region (NULL: no placement) and labels, and where the
	// runs taken run.
	var (
		region, labels any
		ranIn          string
	)
	if pl := p.Placement; pl != nil {
		b, err := json.Marshal(append([]string{}, pl.Labels...))
		if err != nil {
			return nil, fmt.Errorf("claim run: %w", err)
		}
		region, labels, ranIn = pl.Region, string(b), pl.Region
	}
	var runs []*store.ClaimedRun
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := p.Now.UnixMicro()
		slots := 0
		if len(p.Reserved) > 0 {
			if err := tx.QueryRowContext(ctx, fleetSlotsSQL, p.Now.Add(-store.WorkerTimeout).UnixMicro()).Scan(&slots); err != nil {
				return err
			}
		}
		for range max(1, p.Limit) {
			var busy map[string]int
			if len(p.Ceilings) > 0 || len(p.GroupCeilings) > 0 || len(p.Reserved) > 0 {
				var err error
				if busy, err = busyRoutines(ctx, tx.StmtContext(ctx, s.claimBusy), now); err != nil {
					return err
				}
			}
			full, err := fullRoutines(busy, p)
			if err != nil {
				return err
			}
			var only any // NULL: a run of any routine
			if list, restricted := reservedOnly(busy, p.Reserved, slots); restricted {
				if len(list) == 0 {
					return nil
				}
				b, err := json.Marshal(list)
				if err != nil {
					return err
				}
				only = string(b)
			}
			var id, from string
			switch err := tx.StmtContext(ctx, s.claimPick).QueryRowContext(ctx, now, full, region, labels, only).Scan(&id, &from); {
			case errors.Is(err, sql.ErrNoRows):
				return nil
			case err != nil:
				return err
			}
			run, err := scanRun(tx.StmtContext(ctx, s.claimTake).QueryRowContext(ctx,
				p.Worker, p.Now.Add(p.Lease).UnixMicro(), ranIn, id))
			if err != nil {
				return err
			}
			runs = append(runs, &store.ClaimedRun{Run: run, TakenFrom: from})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim run: %w", err)
	}
	return runs, nil
}

// busyRoutines counts, by routine, the running runs that hold a slot.
func busyRoutines(ctx context.Context, busy *sql.Stmt, now int64) (map[string]int, error) {
	rows, err := busy.QueryContext(ctx, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var (
			name string
			n    int
		)
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		counts[name] = n
	}
	return counts, rows.Err()
}

// fullRoutines returns, as a JSON list, the routines of p.Ceilings that
// have as many running runs holding a slot (busy) as their ceiling
// allows, and the routines of the groups of p.GroupCeilings whose
// routines together have as many. p.Exclude is listed too.
func fullRoutines(busy map[string]int, p *store.RunClaimParams) (string, error) {
	full := append([]string{}, p.Exclude...) // "[]", not "null"
	for name, n := range busy {
		if limit := p.Ceilings[name]; limit > 0 && n >= limit {
			full = append(full, name)
		}
	}
	if len(p.GroupCeilings) > 0 {
		groupBusy := map[string]int{}
		for name, n := range busy {
			if g, ok := p.Groups[name]; ok {
				groupBusy[g] += n
			}
		}
		for name, g := range p.Groups {
			if limit := p.GroupCeilings[g]; limit > 0 && groupBusy[g] >= limit {
				full = append(full, name)
			}
		}
	}
	b, err := json.Marshal(full)
	return string(b), err
}

// reservedOnly says whether a claim is restricted to the routines with an
// unmet reservation, and which those are: when the fleet's slots less its
// busy ones (by routine, busy) do not outnumber the unmet reservations
// together (RunClaim).
func reservedOnly(busy, reserved map[string]int, slots int) (only []string, restricted bool) {
	reserving, running, unmet := false, 0, 0
	for name, n := range reserved {
		reserving = reserving || n > 0
		if short := n - busy[name]; short > 0 {
			unmet += short
			only = append(only, name)
		}
	}
	for _, n := range busy {
		running += n
	}
	if !reserving || slots-running > unmet {
		return nil, false
	}
	return only, true
}

// RunHeartbeat extends the leases of the runs a worker holds.
func (s *Store) RunHeartbeat(ctx context.Context, p *store.RunHeartbeatParams) (*store.Heartbeat, error) {
	if p.Worker == "" {
		return nil, fmt.Errorf("heartbeat: %w", errNoWorker)
	}
	var ids any
	if len(p.IDs) > 0 {
		b, err := json.Marshal(p.IDs)
		if err != nil {
			return nil, fmt.Errorf("heartbeat %s: %w", p.Worker, err)
		}
		ids = string(b)
	}
	var hb *store.Heartbeat
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, s.heartbeat).QueryContext(ctx, p.Now.Add(p.Lease).UnixMicro(), p.Worker, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		hb = &store.Heartbeat{}
		for rows.Next() {
			var id string
			var cancel bool
			if err := rows.Scan(&id, &cancel); err != nil {
				return err
			}
			hb.Add(id, cancel)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat %s: %w", p.Worker, err)
	}
	return hb, nil
}

// RunCancelRequest ends a queued run cancelled, or records the cancel of
// a running one and wakes the channels of CancelWakeups.
func (s *Store) RunCancelRequest(ctx context.Context, p *store.RunCancelRequestParams) (*routine.Run, error) {
	errJSON, err := jsonText(p.Error(), false)
	if err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", p.ID, err)
	}
	var run *routine.Run
	err = s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, cancelQueuedSQL, p.ID, p.Now.UnixMicro(), errJSON)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			if err == nil {
				_, err = tx.ExecContext(ctx, cancelStepsSQL, p.ID, p.Now.UnixMicro())
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, cancelRunningSQL, p.ID, p.Now.UnixMicro()); err != nil {
			return err
		}
		run, err = scanRun(tx.QueryRowContext(ctx, runGetExactSQL, p.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return routine.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel run %s: %w", p.ID, err)
	}
	if run.State == routine.StateRunning {
		s.cancels.Wake()
	}
	return run, nil
}

// RunHolders lists the workers that hold leased running runs.
func (s *Store) RunHolders(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, holdersSQL)
	if err != nil {
		return nil, fmt.Errorf("list run holders: %w", err)
	}
	defer rows.Close()
	var workers []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			return nil, fmt.Errorf("list run holders: %w", err)
		}
		workers = append(workers, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list run holders: %w", err)
	}
	return workers, nil
}

// RunExpire ends the leases of a dead worker's runs.
func (s *Store) RunExpire(ctx context.Context, p *store.RunExpireParams) (int, error) {
	if p.Worker == "" {
		return 0, fmt.Errorf("expire leases: %w", errNoWorker)
	}
	var n int64
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, expireSQL, p.Now.UnixMicro(), p.Worker)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases of %s: %w", p.Worker, err)
	}
	s.wakeIf(n > 0)
	return int(n), nil
}

// RunRequeue puts a running run back in the queue.
func (s *Store) RunRequeue(ctx context.Context, p *store.RunRequeueParams) error {
	if p.Worker == "" {
		return fmt.Errorf("requeue run %s: %w", p.ID, errNoWorker)
	}
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.requeue).ExecContext(ctx, micros(p.NotBefore), p.ID, p.Worker)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n > 0 {
			return err
		}
		var one int
		switch err := tx.QueryRowContext(ctx, runExistsSQL, p.ID).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return routine.ErrNotFound
		case err != nil:
			return err
		}
		return fmt.Errorf("not running or not held by %s: %w", p.Worker, routine.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("requeue run %s: %w", p.ID, err)
	}
	s.wakeIf(true)
	return nil
}

// RunCount counts runs by state.
func (s *Store) RunCount(ctx context.Context, p *store.RunCountParams) (map[routine.State]int, error) {
	var (
		where []string
		args  []any
	)
	if len(p.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(p.States)-1)+")")
		for _, st := range p.States {
			args = append(args, string(st))
		}
	}
	if p.Routine != "" {
		where = append(where, "routine = ?")
		args = append(args, p.Routine)
	}
	if p.Routines != nil {
		names, _ := json.Marshal(p.Routines)
		where = append(where, "routine IN (SELECT value FROM json_each(?))")
		args = append(args, string(names))
	}
	q := "SELECT state, COUNT(*) FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " GROUP BY state"
	rows, err := s.r.QueryContext(ctx, q, args...)
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
