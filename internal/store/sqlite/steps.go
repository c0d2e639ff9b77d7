package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	// seq is left to SQLite: a new row gets the next rowid, a replaced one
	// keeps its own.
	stepSaveSQL = `INSERT INTO step_runs (run_id, phase, step_id, kind, state, attempts, exit_code,
			started_at, finished_at, duration_ms, outputs, cpu_ms, max_rss_kb, error, usage)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, phase, step_id) DO UPDATE SET
			kind = excluded.kind, state = excluded.state, attempts = excluded.attempts,
			exit_code = excluded.exit_code, started_at = excluded.started_at,
			finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,
			outputs = excluded.outputs, cpu_ms = excluded.cpu_ms, max_rss_kb = excluded.max_rss_kb,
			error = excluded.error, usage = excluded.usage`
	stepListSQL = `SELECT run_id, phase, step_id, kind, state, attempts, exit_code, started_at, finished_at,
			duration_ms, outputs, cpu_ms, max_rss_kb, error, usage
		FROM step_runs WHERE run_id = ? ORDER BY seq`
)

// StepSave inserts or replaces the record of one step. The run must exist.
func (s *Store) StepSave(ctx context.Context, step *routine.StepRun) error {
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.saveStep(ctx, tx, step)
	})
}

// Checkpoint updates the run, saves step records and appends log lines in
// one transaction: all of it or, on error, none.
func (s *Store) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	if p.Run == nil && len(p.Steps) == 0 && len(p.Logs) == 0 {
		return nil
	}
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if p.Holder != "" && p.Run == nil {
			if err := checkHolder(ctx, tx, p.RunID, p.Holder); err != nil {
				return fmt.Errorf("checkpoint: run %s: %w", p.RunID, err)
			}
		}
		if p.Run != nil {
			if err := s.runUpdateIn(ctx, tx, p.Run); err != nil {
				return fmt.Errorf("checkpoint: update run %s: %w", p.Run.ID, err)
			}
		}
		for _, step := range p.Steps {
			if err := s.saveStep(ctx, tx, step); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
		if err := s.insertLogs(ctx, tx, p.Logs); err != nil {
			return fmt.Errorf("checkpoint: append log: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.wakeIf(p.Run != nil && p.Run.State.Final()) // a slot of its routine is free
	return nil
}

func (s *Store) saveStep(ctx context.Context, tx *sql.Tx, step *routine.StepRun) error {
	outputs, err := jsonText(step.Outputs, len(step.Outputs) == 0)
	if err != nil {
		return fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, err)
	}
	errJSON, err := jsonText(step.Error, step.Error == nil)
	if err != nil {
		return fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, err)
	}
	usage, err := usageText(step.Usage)
	if err != nil {
		return fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, err)
	}
	var exit any
	if step.ExitCode != nil {
		exit = *step.ExitCode
	}
	_, err = tx.StmtContext(ctx, s.stepSave).ExecContext(ctx,
		step.RunID, string(step.Phase), step.ID, step.Kind, string(step.State), step.Attempts, exit,
		micros(step.StartedAt), micros(step.FinishedAt), step.DurationMs, outputs, step.CPUMs, step.MaxRSSKB, errJSON, usage)
	if err != nil {
		if constraint(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
			return fmt.Errorf("save step %s/%s: run: %w", step.RunID, step.ID, routine.ErrNotFound)
		}
		return fmt.Errorf("save step %s/%s: %w", step.RunID, step.ID, err)
	}
	return nil
}

// StepList returns the step records of a run in the order they were first
// saved; none for an unknown run.
func (s *Store) StepList(ctx context.Context, runID string) ([]*routine.StepRun, error) {
	rows, err := s.r.QueryContext(ctx, stepListSQL, runID)
	if err != nil {
		return nil, fmt.Errorf("list steps of %s: %w", runID, err)
	}
	defer rows.Close()
	steps := []*routine.StepRun{}
	for rows.Next() {
		var (
			st                routine.StepRun
			phase, state      string
			exit              sql.NullInt64
			started, finished sql.NullInt64
			outputs, errJSON  sql.NullString
			usage             sql.NullString
		)
		if err := rows.Scan(&st.RunID, &phase, &st.ID, &st.Kind, &state, &st.Attempts, &exit, &started, &finished,
			&st.DurationMs, &outputs, &st.CPUMs, &st.MaxRSSKB, &errJSON, &usage); err != nil {
			return nil, fmt.Errorf("list steps of %s: %w", runID, err)
		}
		st.Phase = routine.Phase(phase)
		st.State = routine.State(state)
		if exit.Valid {
			code := int(exit.Int64)
			st.ExitCode = &code
		}
		st.StartedAt = fromNullMicros(started)
		st.FinishedAt = fromNullMicros(finished)
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
