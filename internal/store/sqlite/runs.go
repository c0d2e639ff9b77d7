package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const runColumns = `id, routine, revision, trigger_kind, trigger_payload, input, tags, state, attempt,
	queued_at, started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, replay_of,
	req_region, req_labels, usage, trace_id, parent_span_id`

// runColumnsOfR are runColumns of the runs aliased r.
var runColumnsOfR = "r." + strings.Join(strings.Fields(strings.ReplaceAll(runColumns, ",", " ")), ", r.")

const (
	stateCountSQL = `SELECT count(*) FROM (SELECT 1 FROM runs WHERE state = ? LIMIT ?)`
	tagCountSQL   = `SELECT count(*) FROM (SELECT 1 FROM run_tags WHERE tag = ? LIMIT ?)`
	runCreateSQL  = `INSERT INTO runs (` + runColumns + `, not_before, dedupe_key, dedupe_until, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// runDedupeSQL finds the run a deduplicated trigger folds into: the
	// first one of the routine with the key whose window is still open.
	runDedupeSQL = `SELECT ` + runColumns + ` FROM runs
		WHERE routine = ? AND dedupe_key = ? AND dedupe_key <> '' AND dedupe_until > ?
		ORDER BY queued_at, id LIMIT 1`
	runUpdateSQL = `UPDATE runs SET revision = ?, state = ?, attempt = ?, started_at = ?, finished_at = ?,
		region = ?, cpu_user_ms = ?, cpu_sys_ms = ?, max_rss_kb = ?, error = ?, usage = ?
		WHERE id = ? AND worker = ?`
	runWorkerSQL   = `SELECT worker FROM runs WHERE id = ?`
	runQueuedAtSQL = `SELECT queued_at FROM runs WHERE id = ?`
	runGetExactSQL = `SELECT ` + runColumns + ` FROM runs WHERE id = ?`
	// The ids in [?1, ?2) are those that start with the prefix ?1; ordered
	// by id, an exact match comes first.
	runGetPrefixSQL = `SELECT ` + runColumns + ` FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3`
)

// RunCreate records a new run.
func (s *Store) RunCreate(ctx context.Context, p *store.RunCreateParams) (*routine.Run, error) {
	var run *routine.Run
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		run, err = s.runCreateIn(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create run %s: %w", p.ID, err)
	}
	s.wakeIf(run.State == routine.StateQueued)
	return run, nil
}

// wakeIf wakes the channels of Wakeups when a write that committed made
// a run claimable.
func (s *Store) wakeIf(claimable bool) {
	if claimable {
		s.wake.Wake()
	}
}

// RunCreateDeduped returns the run of the routine whose dedupe window for
// p.DedupeKey is open at p.QueuedAt, or creates one, in one transaction.
// BEGIN IMMEDIATE (the writer's _txlock) holds the write lock from the
// look-up on, so no other writer, in this process or another, slips a run
// in between.
func (s *Store) RunCreateDeduped(ctx context.Context, p *store.RunCreateParams) (*routine.Run, bool, error) {
	if p.DedupeKey == "" || p.DedupeUntil == nil {
		run, err := s.RunCreate(ctx, p)
		return run, false, err
	}
	var (
		run     *routine.Run
		deduped bool
	)
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		existing, err := scanRun(tx.QueryRowContext(ctx, runDedupeSQL, p.Routine, p.DedupeKey, p.QueuedAt.UnixMicro()))
		switch {
		case err == nil:
			run, deduped = existing, true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("dedupe: %w", err)
		}
		run, err = s.runCreateIn(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("create run %s: %w", p.ID, err)
	}
	s.wakeIf(!deduped && run.State == routine.StateQueued)
	return run, deduped, nil
}

// runCreateIn inserts the run of p within tx.
func (s *Store) runCreateIn(ctx context.Context, tx *sql.Tx, p *store.RunCreateParams) (*routine.Run, error) {
	run, err := store.NewRun(p)
	if err != nil {
		return nil, err
	}
	// A run created running by its executor is leased to it, as a claim
	// would lease it.
	var leaseUntil any
	if run.Worker != "" {
		leaseUntil = run.QueuedAt.Add(p.Lease).UnixMicro()
	}
	input, err := jsonText(run.Input, run.Input == nil)
	if err != nil {
		return nil, err
	}
	tags, err := jsonText(run.Tags, run.Tags == nil)
	if err != nil {
		return nil, err
	}
	labels, err := jsonText(run.Requires.Labels, run.Requires.Labels == nil)
	if err != nil {
		return nil, err
	}
	var payload any
	if run.Trigger.Payload != nil {
		payload = string(run.Trigger.Payload)
	}
	_, err = tx.StmtContext(ctx, s.runCreate).ExecContext(ctx,
		run.ID, run.Routine, run.Revision, run.Trigger.Kind, payload, input, tags, string(run.State), run.Attempt,
		run.QueuedAt.UnixMicro(), nil, nil, run.Worker, "", 0, 0, 0, nil, run.ReplayOf, run.Requires.Region, labels,
		nil, run.TraceID, run.ParentSpanID, micros(p.NotBefore), p.DedupeKey, micros(p.DedupeUntil), leaseUntil)
	if err != nil {
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return nil, fmt.Errorf("id taken: %w", routine.ErrConflict)
		}
		return nil, err
	}
	return run, nil
}

// RunGet returns the run with this id, or the one run whose id starts with
// it when it has at least six characters.
func (s *Store) RunGet(ctx context.Context, id string) (*routine.Run, error) {
	run, err := s.runGet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	return run, nil
}

func (s *Store) runGet(ctx context.Context, id string) (*routine.Run, error) {
	end, ok := prefixEnd(id)
	if len(id) < store.MinPrefix || !ok {
		run, err := scanRun(s.r.QueryRowContext(ctx, runGetExactSQL, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, routine.ErrNotFound
		}
		return run, err
	}
	rows, err := s.r.QueryContext(ctx, runGetPrefixSQL, id, end, store.PrefixLimit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var found []*routine.Run
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		found = append(found, run)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return store.ResolvePrefix(id, found)
}

// prefixEnd returns the least string greater than every string that starts
// with prefix, and false when there is none (prefix is all 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// RunList returns runs, newest first. A filter on a tag walks run_tags,
// the others an index of runs (0001, 0008), newest first, and stop at
// p.Limit.
func (s *Store) RunList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error) {
	runs, err := s.runList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

func (s *Store) runList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, vs ...any) {
		where = append(where, cond)
		args = append(args, vs...)
	}
	// key holds the columns of the order: those of run_tags when it is
	// walked.
	from, key := "runs r", "r"
	switch {
	case p.Tag != "" && len(p.States) == 1 && s.rarerThanTag(ctx, p.States[0], p.Tag):
		// The state's runs, newest first in its index, each checked for
		// the tag.
		add("EXISTS (SELECT 1 FROM run_tags t WHERE t.tag = ? AND t.queued_at = r.queued_at AND t.id = r.id)", p.Tag)
	case p.Tag != "":
		// The tag's runs, newest first, each checked for the other
		// filters. CROSS JOIN keeps that order: left to itself, the
		// planner may read every run of a state and sort them.
		from, key = "run_tags t CROSS JOIN runs r ON r.id = t.id AND r.queued_at = t.queued_at", "t"
		add("t.tag = ?", p.Tag)
	}
	if p.Routine != "" {
		add("r.routine = ?", p.Routine)
	}
	if p.Routines != nil {
		names, _ := json.Marshal(p.Routines)
		add("r.routine IN (SELECT value FROM json_each(?))", string(names))
	}
	if len(p.States) > 0 {
		in := make([]any, len(p.States))
		for i, st := range p.States {
			in[i] = string(st)
		}
		add("r.state IN (?"+strings.Repeat(", ?", len(p.States)-1)+")", in...)
	}
	if p.Trigger != "" {
		add("r.trigger_kind = ?", p.Trigger)
	}
	if !p.Since.IsZero() {
		add(key+".queued_at >= ?", p.Since.UnixMicro())
	}
	if !p.Until.IsZero() {
		add(key+".queued_at < ?", p.Until.UnixMicro())
	}
	if p.IDPrefix != "" {
		add(key+".id >= ?", p.IDPrefix)
		if end, ok := prefixEnd(p.IDPrefix); ok {
			add(key+".id < ?", end)
		}
	}
	if p.Before != "" {
		// After the cursor's run in the order of the list; a cursor that
		// is no run's id bounds the ids alone.
		var queued int64
		switch err := s.r.QueryRowContext(ctx, runQueuedAtSQL, p.Before).Scan(&queued); {
		case errors.Is(err, sql.ErrNoRows):
			add(key+".id < ?", p.Before)
		case err != nil:
			return nil, err
		default:
			add("("+key+".queued_at, "+key+".id) < (?, ?)", queued, p.Before)
		}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	q := "SELECT " + runColumnsOfR + " FROM " + from
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + key + ".queued_at DESC, " + key + ".id DESC LIMIT ?"
	rows, err := s.r.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	runs := []*routine.Run{}
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, rows.Err()
}

// rarerCount bounds the counts rarerThanTag compares: a few thousand
// entries of an index, well under a millisecond.
const rarerCount = 2000

// rarerThanTag reports whether fewer runs are in state than carry tag, by
// counts of at most rarerCount each: a list filtered by both walks the
// rarer one's index, newest first, and checks the other, so it reads
// about 50 ÷ (the other's share) entries rather than, the wrong way
// round, most of the rarer one's.
func (s *Store) rarerThanTag(ctx context.Context, state routine.State, tag string) bool {
	var inState, tagged int
	if s.r.QueryRowContext(ctx, stateCountSQL, string(state), rarerCount).Scan(&inState) != nil ||
		s.r.QueryRowContext(ctx, tagCountSQL, tag, rarerCount).Scan(&tagged) != nil {
		return false
	}
	return inState < tagged
}

// RunUpdate writes the mutable fields of a run. Its id, routine, trigger,
// input, tags, queued_at, replay_of and trace are fixed at creation. The
// trigger runs_end adds a run that ends to its rollups (0011_run_ends.sql).
func (s *Store) RunUpdate(ctx context.Context, run *routine.Run) error {
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.runUpdateIn(ctx, tx, run)
	})
	if err != nil {
		return fmt.Errorf("update run %s: %w", run.ID, err)
	}
	s.wakeIf(run.State.Final()) // a slot of its routine is free
	return nil
}

// runUpdateIn writes the mutable fields of run within tx.
func (s *Store) runUpdateIn(ctx context.Context, tx *sql.Tx, run *routine.Run) error {
	errJSON, err := jsonText(run.Error, run.Error == nil)
	if err != nil {
		return err
	}
	usage, err := usageText(run.Usage)
	if err != nil {
		return err
	}
	res, err := tx.StmtContext(ctx, s.runUpdate).ExecContext(ctx,
		run.Revision, string(run.State), run.Attempt, micros(run.StartedAt), micros(run.FinishedAt),
		run.Region, run.CPUUserMs, run.CPUSysMs, run.MaxRSSKB, errJSON, usage, run.ID, run.Worker)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n > 0 {
		return err
	}
	return checkHolder(ctx, tx, run.ID, run.Worker)
}

// checkHolder returns nil when the run is held by worker, else an error
// wrapping ErrNotFound (no such run) or ErrConflict.
func checkHolder(ctx context.Context, tx *sql.Tx, id, worker string) error {
	var held string
	switch err := tx.QueryRowContext(ctx, runWorkerSQL, id).Scan(&held); {
	case errors.Is(err, sql.ErrNoRows):
		return routine.ErrNotFound
	case err != nil:
		return err
	case held != worker:
		return fmt.Errorf("held by %q, not %q (taken over after a lease expired): %w", held, worker, routine.ErrConflict)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (*routine.Run, error) {
	var (
		run                           routine.Run
		state                         string
		payload, input, tags, errJSON sql.NullString
		labels, usage                 sql.NullString
		queued                        int64
		started, finished             sql.NullInt64
	)
	if err := sc.Scan(&run.ID, &run.Routine, &run.Revision, &run.Trigger.Kind, &payload, &input, &tags,
		&state, &run.Attempt, &queued, &started, &finished, &run.Worker, &run.Region,
		&run.CPUUserMs, &run.CPUSysMs, &run.MaxRSSKB, &errJSON, &run.ReplayOf,
		&run.Requires.Region, &labels, &usage, &run.TraceID, &run.ParentSpanID); err != nil {
		return nil, err
	}
	if err := unmarshalNull(labels, &run.Requires.Labels); err != nil {
		return nil, fmt.Errorf("run %s: required labels: %w", run.ID, err)
	}
	run.State = routine.State(state)
	run.QueuedAt = fromMicros(queued)
	run.StartedAt = fromNullMicros(started)
	run.FinishedAt = fromNullMicros(finished)
	if payload.Valid {
		run.Trigger.Payload = json.RawMessage(payload.String)
	}
	if err := unmarshalNull(input, &run.Input); err != nil {
		return nil, fmt.Errorf("run %s: input: %w", run.ID, err)
	}
	if err := unmarshalNull(tags, &run.Tags); err != nil {
		return nil, fmt.Errorf("run %s: tags: %w", run.ID, err)
	}
	if err := unmarshalNull(errJSON, &run.Error); err != nil {
		return nil, fmt.Errorf("run %s: error: %w", run.ID, err)
	}
	if err := unmarshalNull(usage, &run.Usage); err != nil {
		return nil, fmt.Errorf("run %s: usage: %w", run.ID, err)
	}
	return &run, nil
}
