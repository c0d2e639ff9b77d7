package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	// seq is the identity's: a new row takes the next value, a replaced
	// one keeps its own.
	stepSaveSQL = `INSERT INTO step_runs (run_id, phase, step_id, kind, state, attempts, exit_code,
			started_at, finished_at, duration_ms, outputs, cpu_ms, max_rss_kb, error, usage)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (run_id, phase, step_id) DO UPDATE SET
			kind = excluded.kind, state = excluded.state, attempts = excluded.attempts,
			exit_code = excluded.exit_code, started_at = excluded.started_at,
			finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,
			outputs = excluded.outputs, cpu_ms = excluded.cpu_ms, max_rss_kb = excluded.max_rss_kb,
			error = excluded.error, usage = excluded.usage`
	stepListSQL = `SELECT run_id, phase, step_id, kind, state, attempts, exit_code, started_at, finished_at,
			duration_ms, outputs, cpu_ms, max_rss_kb, error, usage
		FROM step_runs WHERE run_id = $1 ORDER BY seq`
)

// StepSave inserts or replaces the record of one step. The run must exist.
func (s *Store) StepSave(ctx context.Context, step *routine.StepRun) error {
	var b pgx.Batch
	if err := queueStep(&b, step); err != nil {
		return err
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, translate(err))
	}
	return nil
}

// Checkpoint updates the run, saves step records and appends log lines as
// one transaction: all of it or, on error, none. The guard by the run's
// worker comes first (the update of the run, or routines_hold) and locks
// the run, so no claim takes it over before the rest is written. The
// checkpoints of runs executing at once share their statements and
// transactions (groupCheckpoint).
func (s *Store) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	if p.Run == nil && len(p.Steps) == 0 && len(p.Logs) == 0 {
		return nil
	}
	return s.checkpoints.write(ctx, p)
}

// queueStep queues the upsert of a step record on b.
func queueStep(b *pgx.Batch, step *routine.StepRun) error {
	outputs, errJSON, usage, err := stepJSON(step)
	if err != nil {
		return err
	}
	b.Queue(stepSaveSQL, step.RunID, string(step.Phase), step.ID, step.Kind, string(step.State), step.Attempts,
		step.ExitCode, step.StartedAt, step.FinishedAt, step.DurationMs, outputs, step.CPUMs, step.MaxRSSKB, errJSON, usage)
	return nil
}

// stepJSON encodes the outputs, the error and the usage of a step record,
// NULL when it has none.
func stepJSON(step *routine.StepRun) (outputs, errJSON, usage *string, err error) {
	if outputs, err = jsonText(step.Outputs, len(step.Outputs) == 0); err == nil {
		if errJSON, err = jsonText(step.Error, step.Error == nil); err == nil {
			usage, err = jsonText(step.Usage, step.Usage.IsZero())
		}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, err)
	}
	return outputs, errJSON, usage, nil
}

// StepList returns the step records of a run in the order they were first
// saved; none for an unknown run.
func (s *Store) StepList(ctx context.Context, runID string) ([]*routine.StepRun, error) {
	rows, err := s.pool.Query(ctx, stepListSQL, runID)
	if err != nil {
		return nil, fmt.Errorf("list steps of %s: %w", runID, err)
	}
	defer rows.Close()
	steps := []*routine.StepRun{}
	for rows.Next() {
		var (
			st                routine.StepRun
			phase, state      string
			started, finished *time.Time
			outputs, errJSON  *string
			usage             *string
		)
		if err := rows.Scan(&st.RunID, &phase, &st.ID, &st.Kind, &state, &st.Attempts, &st.ExitCode, &started, &finished,
			&st.DurationMs, &outputs, &st.CPUMs, &st.MaxRSSKB, &errJSON, &usage); err != nil {
			return nil, fmt.Errorf("list steps of %s: %w", runID, err)
		}
		st.Phase = routine.Phase(phase)
		st.State = routine.State(state)
		st.StartedAt = utc(started)
		st.FinishedAt = utc(finished)
		if err := unmarshalNull(outputs, &st.Outputs); err != nil {
			return nil, fmt.Errorf("list steps of %s: step %s: outputs: %w", runID, st.ID, err)
		}
		if err := unmarshalNull(errJSON, &st.Error); err != nil {
			return nil, fmt.Errorf("list steps of %s: step %s: error: %w", runID, st.ID, err)
		}
		if err := unmarshalNull(usage, &st.Usage); err != nil {
			return nil, fmt.Errorf("list steps of %s: step %s: usage: %w", runID, st.ID, err)
		}
		steps = append(steps, &st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list steps of %s: %w", runID, err)
	}
	return steps, nil
}
