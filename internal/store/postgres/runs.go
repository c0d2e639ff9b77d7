package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const runColumns = `id, routine, revision, trigger_kind, trigger_payload, input, tags, state, attempt,
	queued_at, started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, replay_of,
	req_region, req_labels, usage, trace_id, parent_span_id`

// runColumnsOfR are runColumns of the runs aliased r.
var runColumnsOfR = "r." + strings.Join(strings.Fields(strings.ReplaceAll(runColumns, ",", " ")), ", r.")

const (
	// runValues are the values of a new run (runArgs): its fields given
	// at creation, zero for the rest; not_before and lease_until are
	// instants of Store.later, read as COALESCE(abs, now() + delay). The
	// casts type the parameters where a SELECT gives them no column.
	runValues = `$1::text, $2::text, $3::text, $4::text, $5::bytea, $6::text, $7::text, $8::text, 0,
		$9::timestamptz, NULL, NULL, $10::text, '', 0, 0, 0, NULL, $11::text, $18::text, $19::text[],
		NULL, $20::text, $21::text, COALESCE($12::timestamptz, now() + $13::interval), $14::text, $15::timestamptz,
		COALESCE($16::timestamptz, now() + $17::interval)`
	runInsertColumns = runColumns + `, not_before, dedupe_key, dedupe_until, lease_until`
	runCreateSQL     = `INSERT INTO runs (` + runInsertColumns + `) VALUES (` + runValues + `)`
	// runCreateDedupedSQL creates the run unless one of its routine has
	// the key with a window open at its queued_at. Under the key's
	// advisory lock (dedupeLockSQL), taken by a statement before it, it
	// sees every run created by the callers that held the lock before.
	runCreateDedupedSQL = `INSERT INTO runs (` + runInsertColumns + `) SELECT ` + runValues + `
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE routine = $2 AND dedupe_key = $14 AND dedupe_key <> ''
			AND dedupe_until > $9)`
	dedupeLockSQL = `SELECT pg_advisory_xact_lock(x'52540003'::integer, hashtext($1::text || E'\n' || $2::text))`
	// runDedupeSQL finds the run a deduplicated trigger folds into: the
	// first one of the routine with the key whose window is still open.
	runDedupeSQL = `SELECT ` + runColumns + ` FROM runs
		WHERE routine = $1 AND dedupe_key = $2 AND dedupe_key <> '' AND dedupe_until > $3
		ORDER BY queued_at, id LIMIT 1`
	runGetExactSQL = `SELECT ` + runColumns + ` FROM runs WHERE id = $1`
	runQueuedAtSQL = `SELECT queued_at FROM runs WHERE id = $1`
	// The ids in [$1, $2) are those that start with the prefix $1; ordered
	// by id, an exact match comes first.
	runGetPrefixSQL = `SELECT ` + runColumns + ` FROM runs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3`
	// runUpdateSQL writes the mutable fields of a run held by its worker
	// $12, and fails (routines_not_held) when none is: a failed statement
	// ends the pipeline it is part of, and undoes it. The update locks the
	// run for the rest of the pipeline.
	runUpdateSQL = `WITH updated AS (
			UPDATE runs SET revision = $2, state = $3, attempt = $4, started_at = $5, finished_at = $6,
				region = $7, cpu_user_ms = $8, cpu_sys_ms = $9, max_rss_kb = $10, error = $11, usage = $13
			WHERE id = $1 AND worker = $12 RETURNING 1
		)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM updated) THEN true ELSE routines_not_held($1, $12) END`
	// holdSQL locks a run for the rest of a pipeline, and fails unless $2
	// holds it.
	holdSQL = `SELECT routines_hold($1, $2)`
)

// RunCreate records a new run. The trigger runs_wake_insert wakes the
// listeners when it is queued.
func (s *Store) RunCreate(ctx context.Context, p *store.RunCreateParams) (*routine.Run, error) {
	run, args, err := s.newRun(p)
	if err != nil {
		return nil, fmt.Errorf("create run %s: %w", p.ID, err)
	}
	if _, err := s.pool.Exec(ctx, runCreateSQL, args...); err != nil {
		return nil, fmt.Errorf("create run %s: %w", p.ID, translate(err))
	}
	return run, nil
}

// RunCreateDeduped returns the run of the routine whose dedupe window for
// p.DedupeKey is open at p.QueuedAt, or creates one. One pipeline, so one
// transaction: the advisory lock of (routine, key), then the insert unless
// such a run exists, then the look-up of the run that does. The lock makes
// concurrent callers with one key take turns, each seeing the runs of
// those before it, so that exactly one creates the run.
func (s *Store) RunCreateDeduped(ctx context.Context, p *store.RunCreateParams) (*routine.Run, bool, error) {
	if p.DedupeKey == "" || p.DedupeUntil == nil {
		run, err := s.RunCreate(ctx, p)
		return run, false, err
	}
	run, args, err := s.newRun(p)
	if err != nil {
		return nil, false, fmt.Errorf("create run %s: %w", p.ID, err)
	}
	var (
		created  bool
		existing *routine.Run
		b        pgx.Batch
	)
	b.Queue(dedupeLockSQL, p.Routine, p.DedupeKey)
	b.Queue(runCreateDedupedSQL, args...).Exec(func(ct pgconn.CommandTag) error {
		created = ct.RowsAffected() > 0
		return nil
	})
	b.Queue(runDedupeSQL, p.Routine, p.DedupeKey, p.QueuedAt).QueryRow(func(row pgx.Row) error {
		r, err := scanRun(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		existing = r
		return err
	})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, false, fmt.Errorf("create run %s: %w", p.ID, translate(err))
	}
	if created {
		return run, false, nil
	}
	if existing == nil { // runs are never deleted: the run that stopped the insert is there
		return nil, false, fmt.Errorf("create run %s: dedupe: the run of key %q vanished", p.ID, p.DedupeKey)
	}
	return existing, true, nil
}

// newRun returns the run p creates, as RunCreate returns it, and the
// arguments of runValues.
func (s *Store) newRun(p *store.RunCreateParams) (*routine.Run, []any, error) {
	run, err := store.NewRun(p)
	if err != nil {
		return nil, nil, err
	}
	// A run created running by its executor is leased to it, as a claim
	// would lease it.
	var leaseUntil *time.Time
	if run.Worker != "" {
		until := run.QueuedAt.Add(p.Lease)
		leaseUntil = &until
	}
	input, err := jsonText(run.Input, run.Input == nil)
	if err != nil {
		return nil, nil, err
	}
	tags, err := jsonText(run.Tags, run.Tags == nil)
	if err != nil {
		return nil, nil, err
	}
	notBefore, notBeforeDelay := s.later(p.NotBefore, p.QueuedAt)
	lease, leaseDelay := s.later(leaseUntil, run.QueuedAt)
	return run, []any{run.ID, run.Routine, run.Revision, run.Trigger.Kind, []byte(run.Trigger.Payload), input, tags,
		string(run.State), p.QueuedAt, run.Worker, run.ReplayOf, notBefore, notBeforeDelay, p.DedupeKey, p.DedupeUntil,
		lease, leaseDelay, run.Requires.Region, labelsArg(run.Requires.Labels), run.TraceID, run.ParentSpanID}, nil
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
	// PostgreSQL's text holds valid UTF-8 without NUL only: no id is
	// anything else, and the server would refuse it as an argument.
	if !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return nil, routine.ErrNotFound
	}
	end, ok := prefixEnd(id)
	if len(id) < store.MinPrefix || !ok {
		run, err := scanRun(s.pool.QueryRow(ctx, runGetExactSQL, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, routine.ErrNotFound
		}
		return run, err
	}
	rows, err := s.pool.Query(ctx, runGetPrefixSQL, id, end, store.PrefixLimit)
	if err != nil {
		return nil, err
	}
	found, err := collectRuns(rows)
	if err != nil {
		return nil, err
	}
	return store.ResolvePrefix(id, found)
}

// prefixEnd returns the least string greater, bytewise, than every string
// that starts with the valid UTF-8 prefix: the prefix with its last rune
// replaced by the next one (UTF-8 sorts bytewise as its runes do), after
// dropping the trailing runes that have no next; false when none has.
func prefixEnd(prefix string) (string, bool) {
	for prefix != "" {
		r, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
		next := r + 1
		if next == 0xd800 { // surrogates are not runes of UTF-8
			next = 0xe000
		}
		if next <= utf8.MaxRune {
			return prefix + string(next), true
		}
	}
	return "", false
}

// RunList returns runs, newest first. A filter on a tag walks run_tags,
// the others an index of runs (0001, 0006), newest first, and stop at
// p.Limit.
func (s *Store) RunList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error) {
	runs, err := s.runList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	if runs == nil {
		runs = []*routine.Run{}
	}
	return runs, nil
}

func (s *Store) runList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error) {
	// PostgreSQL's text holds valid UTF-8 without NUL only: no id is
	// anything else.
	for _, id := range []string{p.IDPrefix, p.Before} {
		if !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
			return nil, nil
		}
	}
	var w where
	if p.Routine != "" {
		w.add("r.routine = ?", p.Routine)
	}
	if p.Routines != nil {
		w.add("r.routine = ANY(?)", p.Routines)
	}
	if len(p.States) > 0 {
		w.add("r.state = ANY(?)", states(p.States))
	}
	if p.Trigger != "" {
		w.add("r.trigger_kind = ?", p.Trigger)
	}
	// key holds the columns of the order: those of run_tags when it is
	// walked.
	from, key := "runs r", "r"
	if p.Tag != "" {
		// The tag's index walked newest first, each of its runs looked up
		// with the other filters until the page is full: a subquery with
		// OFFSET 0 is kept a lookup per row. A join would leave the
		// planner to guess how many of the tag's runs pass the filters
		// (independent conditions, it assumes): it then hashes them all
		// and sorts, or splits the walk among parallel workers, each
		// walking past the page (329 ms for tag, week and state over a
		// million runs, on a busy 2-core machine). The lookup by
		// queued_at and id is answered by the index of a filter
		// (routine, state or trigger kind, then queued_at and id) without
		// reading the runs that fail it.
		lookup := "SELECT " + runColumnsOfR + " FROM runs r WHERE r.id = t.id AND r.queued_at = t.queued_at"
		for _, c := range w.conds {
			lookup += " AND " + c
		}
		w.conds = nil
		from, key = "run_tags t CROSS JOIN LATERAL ("+lookup+" OFFSET 0) r", "t"
		w.add("t.tag = ?", p.Tag)
	}
	if !p.Since.IsZero() {
		w.add(key+".queued_at >= ?", p.Since)
	}
	if !p.Until.IsZero() {
		w.add(key+".queued_at < ?", p.Until)
	}
	if p.IDPrefix != "" {
		w.add(key+".id >= ?", p.IDPrefix)
		if end, ok := prefixEnd(p.IDPrefix); ok {
			w.add(key+".id < ?", end)
		}
	}
	if p.Before != "" {
		// After the cursor's run in the order of the list; a cursor that
		// is no run's id bounds the ids alone.
		var queued time.Time
		switch err := s.pool.QueryRow(ctx, runQueuedAtSQL, p.Before).Scan(&queued); {
		case errors.Is(err, pgx.ErrNoRows):
			w.add(key+".id < ?", p.Before)
		case err != nil:
			return nil, err
		default:
			w.conds = append(w.conds, "("+key+".queued_at, "+key+".id) < ("+w.arg(queued)+", "+w.arg(p.Before)+")")
		}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	q := "SELECT " + runColumnsOfR + " FROM " + from + w.sql() +
		" ORDER BY " + key + ".queued_at DESC, " + key + ".id DESC LIMIT " + w.arg(limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, err
	}
	return collectRuns(rows)
}

// where builds the WHERE clause of a query whose filters depend on its
// parameters, numbering them $1, $2, … in order.
type where struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// add adds the condition cond, in which ? stands for the placeholder of
// the argument v.
func (w *where) add(cond string, v any) {
	w.conds = append(w.conds, strings.Replace(cond, "?", w.arg(v), 1))
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func states(ss []routine.State) []string {
	out := make([]string, len(ss))
	for i, st := range ss {
		out[i] = string(st)
	}
	return out
}

// RunUpdate writes the mutable fields of a run, guarded by its worker. Its
// id, routine, revision, trigger, input, tags, queued_at and replay_of are
// fixed at creation.
func (s *Store) RunUpdate(ctx context.Context, run *routine.Run) error {
	var b pgx.Batch
	if err := queueRunUpdate(&b, run); err != nil {
		return fmt.Errorf("update run %s: %w", run.ID, err)
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("update run %s: %w", run.ID, translate(err))
	}
	return nil
}

// queueRunUpdate queues on b the update of run, which fails the pipeline
// unless run.Worker holds it. The trigger runs_wake_update wakes the
// listeners when a running run ends that may free a slot a claim waits
// for (0005_claim_speed.sql).
func queueRunUpdate(b *pgx.Batch, run *routine.Run) error {
	errJSON, err := jsonText(run.Error, run.Error == nil)
	if err != nil {
		return err
	}
	usage, err := jsonText(run.Usage, run.Usage.IsZero())
	if err != nil {
		return err
	}
	b.Queue(runUpdateSQL, run.ID, run.Revision, string(run.State), run.Attempt, run.StartedAt, run.FinishedAt,
		run.Region, run.CPUUserMs, run.CPUSysMs, run.MaxRSSKB, errJSON, run.Worker, usage)
	return nil
}

// scanRun reads a row of runColumns, and the extra columns after them into
// extra.
func scanRun(r rows, extra ...any) (*routine.Run, error) {
	var (
		run                  routine.Run
		state                string
		payload              []byte
		input, tags, errJSON *string
		usage                *string
		queued               time.Time
		started, finished    *time.Time
	)
	dest := append([]any{&run.ID, &run.Routine, &run.Revision, &run.Trigger.Kind, &payload, &input, &tags,
		&state, &run.Attempt, &queued, &started, &finished, &run.Worker, &run.Region,
		&run.CPUUserMs, &run.CPUSysMs, &run.MaxRSSKB, &errJSON, &run.ReplayOf,
		&run.Requires.Region, &run.Requires.Labels, &usage, &run.TraceID, &run.ParentSpanID}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	if len(run.Requires.Labels) == 0 {
		run.Requires.Labels = nil
	}
	run.State = routine.State(state)
	run.QueuedAt = queued.UTC()
	run.StartedAt = utc(started)
	run.FinishedAt = utc(finished)
	if payload != nil {
		run.Trigger.Payload = json.RawMessage(payload)
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

// collectRuns reads every row of runColumns.
func collectRuns(rows pgx.Rows) ([]*routine.Run, error) {
	defer rows.Close()
	var runs []*routine.Run
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, rows.Err()
}
