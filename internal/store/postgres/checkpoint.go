package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// maxCheckpoints bounds how many checkpoints share one transaction, and so
// how long the last of them waits for the commit.
const maxCheckpoints = 64

// groupCheckpoint makes the checkpoints of the runs a process executes at
// once share statements and a transaction. Alone, a checkpoint is a
// pipeline of a statement per record (the run, each step, the log lines):
// what PostgreSQL spends on a no-op run is mostly those statements' own
// cost and their commit, not the rows. Under load, the checkpoints that
// arrive while one is being written go into the next write together: the
// runs in one UPDATE, the steps in one INSERT, the lines in one INSERT,
// from arrays, in one round trip and one commit. A batch that fails (a
// run no longer held, a log seq taken) is undone whole and its checkpoints
// are written again one by one, so that each gets its own error. A caller
// that finds no write under way writes its batch itself: a lone
// checkpoint costs what it did.
type groupCheckpoint struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	done    *sync.Cond // signalled after each batch
	pending []*checkpointOp
	busy    bool // a caller is writing a batch
}

// checkpointOp is one caller's checkpoint.
type checkpointOp struct {
	ctx  context.Context
	p    *store.CheckpointParams
	err  error
	done bool
}

func newGroupCheckpoint(pool *pgxpool.Pool) *groupCheckpoint {
	g := &groupCheckpoint{pool: pool}
	g.done = sync.NewCond(&g.mu)
	return g
}

// write writes p, in a transaction shared with the checkpoints of other
// callers made at the same time, and returns once it committed or failed.
func (g *groupCheckpoint) write(ctx context.Context, p *store.CheckpointParams) error {
	op := &checkpointOp{ctx: ctx, p: p}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, op)
	for !op.done {
		if g.busy {
			g.done.Wait()
			continue
		}
		batch := g.take()
		g.busy = true
		g.mu.Unlock()
		g.commit(ctx, batch)
		g.mu.Lock()
		g.busy = false
		g.done.Broadcast()
	}
	return op.err
}

// take removes from pending the checkpoints of the next batch: in order,
// at most maxCheckpoints, and stopping before one that writes a run an
// earlier one in the batch writes (one statement cannot write a row
// twice). A checkpoint whose caller gave up is done with its error.
func (g *groupCheckpoint) take() []*checkpointOp {
	var (
		batch []*checkpointOp
		runs  = map[string]bool{}
		n     int
	)
	for _, op := range g.pending {
		if err := op.ctx.Err(); err != nil {
			op.err, op.done = err, true
			n++
			continue
		}
		ids := op.runIDs()
		if len(batch) == maxCheckpoints || clashes(runs, ids) {
			break
		}
		for _, id := range ids {
			runs[id] = true
		}
		batch = append(batch, op)
		n++
	}
	g.pending = g.pending[n:]
	return batch
}

// runIDs lists the runs a checkpoint writes.
func (op *checkpointOp) runIDs() []string {
	p := op.p
	ids := []string{p.RunID}
	if p.Run != nil {
		ids = append(ids, p.Run.ID)
	}
	for _, st := range p.Steps {
		ids = append(ids, st.RunID)
	}
	for _, l := range p.Logs {
		ids = append(ids, l.RunID)
	}
	return ids
}

func clashes(seen map[string]bool, ids []string) bool {
	for _, id := range ids {
		if id != "" && seen[id] {
			return true
		}
	}
	return false
}

// commit writes a batch and records each checkpoint's error. ctx is the
// writing caller's, without its cancellation: the batch holds others'.
func (g *groupCheckpoint) commit(ctx context.Context, batch []*checkpointOp) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if len(batch) > 1 {
		err = g.commitBatch(ctx, batch)
	}
	if len(batch) == 1 || err != nil {
		for _, op := range batch {
			op.err = g.commitOne(op.ctx, op.p)
		}
	}
	g.mu.Lock()
	for _, op := range batch {
		op.done = true
	}
	g.mu.Unlock()
}

// commitOne writes one checkpoint as a pipeline of its own: the guard by
// the run's worker first (the update of the run, or routines_hold), which
// locks the run so that no claim takes it over before the rest is
// written.
func (g *groupCheckpoint) commitOne(ctx context.Context, p *store.CheckpointParams) error {
	var b pgx.Batch
	switch {
	case p.Run != nil:
		if err := queueRunUpdate(&b, p.Run); err != nil {
			return fmt.Errorf("checkpoint: update run %s: %w", p.Run.ID, err)
		}
	case p.Holder != "":
		b.Queue(holdSQL, p.RunID, p.Holder)
	}
	for _, step := range p.Steps {
		if err := queueStep(&b, step); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	queueLogs(&b, p.Logs)
	if err := g.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", translate(err))
	}
	return nil
}

const (
	// runUpdatesSQL is runUpdateSQL of many runs, from one array per
	// column; its guard fails the statement (routines_not_held) at the
	// first run not held by its worker.
	runUpdatesSQL = `WITH u AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[], $6::timestamptz[],
				$7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[])
				AS u(id, revision, state, attempt, started_at, finished_at, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, error, worker, usage)
		), updated AS (
			UPDATE runs r SET revision = u.revision, state = u.state, attempt = u.attempt, started_at = u.started_at,
				finished_at = u.finished_at, region = u.region, cpu_user_ms = u.cpu_user_ms, cpu_sys_ms = u.cpu_sys_ms,
				max_rss_kb = u.max_rss_kb, error = u.error, usage = u.usage
			FROM u WHERE r.id = u.id AND r.worker = u.worker RETURNING r.id
		)
		SELECT routines_not_held(u.id, u.worker) FROM u WHERE u.id NOT IN (SELECT updated.id FROM updated) LIMIT 1`
	// holdsSQL is holdSQL of many runs.
	holdsSQL = `SELECT routines_hold(h.id, h.worker) FROM unnest($1::text[], $2::text[]) AS h(id, worker)`
	// stepSavesSQL is stepSaveSQL of many steps, none twice.
	stepSavesSQL = `INSERT INTO step_runs (run_id, phase, step_id, kind, state, attempts, exit_code,
			started_at, finished_at, duration_ms, outputs, cpu_ms, max_rss_kb, error, usage)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::integer[],
			$8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::text[], $12::bigint[], $13::bigint[], $14::text[],
			$15::text[])
		ON CONFLICT (run_id, phase, step_id) DO UPDATE SET
			kind = excluded.kind, state = excluded.state, attempts = excluded.attempts,
			exit_code = excluded.exit_code, started_at = excluded.started_at,
			finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,
			outputs = excluded.outputs, cpu_ms = excluded.cpu_ms, max_rss_kb = excluded.max_rss_kb,
			error = excluded.error, usage = excluded.usage`
)

// commitBatch writes the checkpoints of batch as one pipeline of a
// statement per kind of record: the guards first, then the steps, then
// the lines.
func (g *groupCheckpoint) commitBatch(ctx context.Context, batch []*checkpointOp) error {
	var (
		b     pgx.Batch
		runs  runColumnsOf
		holds [2][]string
		steps stepColumnsOf
		lines []routine.LogLine
	)
	for _, op := range batch {
		p := op.p
		switch {
		case p.Run != nil:
			if err := runs.add(p.Run); err != nil {
				return err
			}
		case p.Holder != "":
			holds[0], holds[1] = append(holds[0], p.RunID), append(holds[1], p.Holder)
		}
		if err := steps.add(p.Steps); err != nil {
			return err
		}
		lines = append(lines, p.Logs...)
	}
	if len(runs.id) > 0 {
		b.Queue(runUpdatesSQL, runs.args()...)
	}
	if len(holds[0]) > 0 {
		b.Queue(holdsSQL, holds[0], holds[1])
	}
	if len(steps.runID) > 0 {
		b.Queue(stepSavesSQL, steps.args()...)
	}
	queueLogs(&b, lines)
	return g.pool.SendBatch(ctx, &b).Close()
}

// runColumnsOf holds the arguments of runUpdatesSQL.
type runColumnsOf struct {
	id, revision, state, region, worker []string
	attempt                             []int32
	started, finished                   []*time.Time
	cpuUser, cpuSys, rss                []int64
	errJSON, usage                      []*string
}

func (c *runColumnsOf) add(run *routine.Run) error {
	errJSON, err := jsonText(run.Error, run.Error == nil)
	if err != nil {
		return err
	}
	usage, err := jsonText(run.Usage, run.Usage.IsZero())
	if err != nil {
		return err
	}
	c.usage = append(c.usage, usage)
	c.id, c.revision, c.state = append(c.id, run.ID), append(c.revision, run.Revision), append(c.state, string(run.State))
	c.attempt = append(c.attempt, int32(run.Attempt))
	c.started, c.finished = append(c.started, run.StartedAt), append(c.finished, run.FinishedAt)
	c.region, c.worker = append(c.region, run.Region), append(c.worker, run.Worker)
	c.cpuUser, c.cpuSys, c.rss = append(c.cpuUser, run.CPUUserMs), append(c.cpuSys, run.CPUSysMs), append(c.rss, run.MaxRSSKB)
	c.errJSON = append(c.errJSON, errJSON)
	return nil
}

func (c *runColumnsOf) args() []any {
	return []any{c.id, c.revision, c.state, c.attempt, c.started, c.finished, c.region, c.cpuUser, c.cpuSys, c.rss, c.errJSON, c.worker, c.usage}
}

// stepColumnsOf holds the arguments of stepSavesSQL: each step once, as
// last given, at the place it was first given (as upserts one after the
// other leave it).
type stepColumnsOf struct {
	at                                map[stepRunKey]int
	runID, phase, stepID, kind, state []string
	attempts                          []int32
	exitCode                          []*int32
	started, finished                 []*time.Time
	duration, cpu, rss                []int64
	outputs, errJSON, usage           []*string
}

type stepRunKey struct{ run, phase, id string }

func (c *stepColumnsOf) add(steps []*routine.StepRun) error {
	for _, st := range steps {
		outputs, errJSON, usage, err := stepJSON(st)
		if err != nil {
			return err
		}
		var exit *int32
		if st.ExitCode != nil {
			exit = new(int32(*st.ExitCode))
		}
		k := stepRunKey{st.RunID, string(st.Phase), st.ID}
		if c.at == nil {
			c.at = map[stepRunKey]int{}
		}
		i, ok := c.at[k]
		if !ok {
			i = len(c.runID)
			c.at[k] = i
			c.runID, c.phase, c.stepID = append(c.runID, ""), append(c.phase, ""), append(c.stepID, "")
			c.kind, c.state = append(c.kind, ""), append(c.state, "")
			c.attempts, c.exitCode = append(c.attempts, 0), append(c.exitCode, nil)
			c.started, c.finished = append(c.started, nil), append(c.finished, nil)
			c.duration, c.cpu, c.rss = append(c.duration, 0), append(c.cpu, 0), append(c.rss, 0)
			c.outputs, c.errJSON, c.usage = append(c.outputs, nil), append(c.errJSON, nil), append(c.usage, nil)
		}
		c.runID[i], c.phase[i], c.stepID[i], c.kind[i], c.state[i] = st.RunID, string(st.Phase), st.ID, st.Kind, string(st.State)
		c.attempts[i], c.exitCode[i] = int32(st.Attempts), exit
		c.started[i], c.finished[i] = st.StartedAt, st.FinishedAt
		c.duration[i], c.cpu[i], c.rss[i] = st.DurationMs, st.CPUMs, st.MaxRSSKB
		c.outputs[i], c.errJSON[i], c.usage[i] = outputs, errJSON, usage
	}
	return nil
}

func (c *stepColumnsOf) args() []any {
	return []any{c.runID, c.phase, c.stepID, c.kind, c.state, c.attempts, c.exitCode, c.started, c.finished,
		c.duration, c.outputs, c.cpu, c.rss, c.errJSON, c.usage}
}
