package storetest

import (
	"errors"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseCheckpoint(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("StepsAndLogsTogether", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		done := &routine.StepRun{RunID: run.ID, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded,
			Attempts: 1, ExitCode: ptr(0), StartedAt: ptr(at(0)), FinishedAt: ptr(at(1e6)), DurationMs: 1, Outputs: routine.Outputs{"k": "v"}}
		next := &routine.StepRun{RunID: run.ID, ID: "b", Phase: routine.PhaseMain, Kind: "run", State: routine.StateRunning,
			Attempts: 1, StartedAt: ptr(at(2e6))}
		logs := []routine.LogLine{
			{RunID: run.ID, Step: "a", Seq: 1, Time: at(0), Stream: routine.StreamStdout, Text: "hello"},
			{RunID: run.ID, Step: "a", Seq: 2, Time: at(1), Stream: routine.StreamStderr, Text: "world"},
		}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Steps: []*routine.StepRun{done, next}, Logs: logs}); err != nil {
			t.Fatal(err)
		}
		steps := b.listSteps(t, run.ID, 2)
		checkStep(t, steps[0], done)
		checkStep(t, steps[1], next)
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, logs)
		// The same step again replaces its record, as StepSave does.
		next.State, next.FinishedAt = routine.StateFailed, ptr(at(3e6))
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Steps: []*routine.StepRun{next}}); err != nil {
			t.Fatal(err)
		}
		checkStep(t, b.listSteps(t, run.ID, 2)[1], next)
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{}); err != nil {
			t.Fatalf("empty checkpoint: %v", err)
		}
	})

	t.Run("WithTheRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, func(p *store.RunCreateParams) { p.State = routine.StateRunning })
		run.Attempt, run.StartedAt, run.FinishedAt = 1, ptr(stored(at(0))), ptr(stored(at(5e6)))
		run.State, run.CPUUserMs = routine.StateSucceeded, 7
		step := &routine.StepRun{RunID: run.ID, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded,
			Attempts: 1, StartedAt: ptr(at(1e6)), FinishedAt: ptr(at(4e6)), DurationMs: 3}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
			t.Fatal(err)
		}
		checkRun(t, b.getRun(t, run.ID), run)
		checkStep(t, b.listSteps(t, run.ID, 1)[0], step)
		// The run alone.
		run.State = routine.StateFailed
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: run}); err != nil {
			t.Fatal(err)
		}
		checkRun(t, b.getRun(t, run.ID), run)
		// A missing run: nothing of the checkpoint is written.
		gone := *run
		gone.ID = newID()
		line := routine.LogLine{RunID: run.ID, Step: "a", Seq: 1, Time: at(0), Stream: routine.StreamStdout, Text: "x"}
		err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: &gone, Logs: []routine.LogLine{line}})
		if !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("checkpoint of a missing run: got %v, want ErrNotFound", err)
		}
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, []routine.LogLine{})
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		line := routine.LogLine{RunID: run.ID, Step: "a", Seq: 1, Time: at(0), Stream: routine.StreamStdout, Text: "first"}
		if err := b.s.LogAppend(b.ctx, []routine.LogLine{line}); err != nil {
			t.Fatal(err)
		}
		step := &routine.StepRun{RunID: run.ID, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded}
		dup := line
		dup.Text = "again"
		err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Steps: []*routine.StepRun{step}, Logs: []routine.LogLine{dup}})
		if !errors.Is(err, routine.ErrConflict) {
			t.Fatalf("checkpoint with a taken seq: got %v, want ErrConflict", err)
		}
		b.listSteps(t, run.ID, 0)
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, []routine.LogLine{line})
		missing := &routine.StepRun{RunID: newID(), ID: "x", Phase: routine.PhaseMain, Kind: "run", State: routine.StateRunning}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Steps: []*routine.StepRun{missing}}); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("checkpoint of a missing run: got %v, want ErrNotFound", err)
		}
	})
}
