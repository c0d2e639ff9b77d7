package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The batches of groupCheckpoint, looked at from inside: the conformance
// suite and the concurrent test below see only that every checkpoint is
// written or refused as when alone.

func setupGroup(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), pgtest.Shared(t).Database(t), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// heldRun creates a run running, held by worker w.
func heldRun(t *testing.T, s *Store) *routine.Run {
	t.Helper()
	run, err := s.RunCreate(t.Context(), &store.RunCreateParams{ID: ulid.Make().String(), Routine: "r", QueuedAt: time.Now(),
		State: routine.StateRunning, Worker: "w", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// finished is the checkpoint of run's end as worker: the run succeeded,
// its step too, one line.
func finished(run *routine.Run, worker string) *checkpointOp {
	now := time.Now().UTC()
	r := *run
	r.Worker, r.State, r.Attempt, r.StartedAt, r.FinishedAt = worker, routine.StateSucceeded, 1, &now, &now
	return &checkpointOp{ctx: context.Background(), p: &store.CheckpointParams{Run: &r,
		Steps: []*routine.StepRun{{RunID: run.ID, ID: "get", Phase: routine.PhaseMain, Kind: "state", State: routine.StateSucceeded,
			Attempts: 1, StartedAt: &now, FinishedAt: &now, ExitCode: new(0)}},
		Logs: []routine.LogLine{{RunID: run.ID, Step: "get", Seq: 1, Time: now, Stream: routine.StreamStdout, Text: "x is not set"}}}}
}

// written reports whether op's checkpoint is in the store: the run in its
// state, its step and its line.
func written(t *testing.T, s *Store, op *checkpointOp) bool {
	t.Helper()
	ctx := t.Context()
	run, err := s.RunGet(ctx, op.p.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := s.StepList(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := s.LogList(ctx, &store.LogListParams{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	all := run.State == routine.StateSucceeded && len(steps) == 1 && len(lines) == 1
	none := run.State == routine.StateRunning && len(steps) == 0 && len(lines) == 0
	if !all && !none {
		t.Fatalf("run %s half written: %s, %d steps, %d lines", run.ID, run.State, len(steps), len(lines))
	}
	return all
}

// A batch is one transaction: a checkpoint of a run no longer held fails
// it whole; commit then writes the others one by one, and only the
// refused one fails, with ErrConflict, as alone.
func TestGroupCheckpointFailsAlone(t *testing.T) {
	t.Parallel()
	s := setupGroup(t)
	a, b := finished(heldRun(t, s), "w"), finished(heldRun(t, s), "w")
	stranger := finished(heldRun(t, s), "another") // taken over meanwhile
	batch := []*checkpointOp{a, stranger, b}
	if err := s.checkpoints.commitBatch(t.Context(), batch); !errors.Is(translate(err), routine.ErrConflict) {
		t.Fatalf("commitBatch = %v, want ErrConflict", err)
	}
	for _, op := range batch {
		if written(t, s, op) {
			t.Fatalf("run %s written by a batch that failed", op.p.Run.ID)
		}
	}
	s.checkpoints.commit(t.Context(), batch)
	for _, op := range []*checkpointOp{a, b} {
		if op.err != nil || !written(t, s, op) {
			t.Errorf("run %s: %v, written %v; want written", op.p.Run.ID, op.err, written(t, s, op))
		}
	}
	if !errors.Is(stranger.err, routine.ErrConflict) || written(t, s, stranger) {
		t.Errorf("the run not held: %v, written %v; want ErrConflict and nothing written", stranger.err, written(t, s, stranger))
	}
}

// A batch writes each run, step and line of its checkpoints in one
// statement per kind; a step given twice is written once, as last given;
// checkpoints without their run are guarded by their holder.
func TestGroupCheckpointBatch(t *testing.T) {
	t.Parallel()
	s := setupGroup(t)
	var batch []*checkpointOp
	for range 5 {
		batch = append(batch, finished(heldRun(t, s), "w"))
	}
	held := finished(heldRun(t, s), "w").p
	held.RunID, held.Holder, held.Run = held.Steps[0].RunID, "w", nil
	batch = append(batch, &checkpointOp{ctx: context.Background(), p: held})
	first := batch[0].p
	running := *first.Steps[0]
	running.State, running.FinishedAt = routine.StateRunning, nil
	first.Steps = append([]*routine.StepRun{&running}, first.Steps...)
	if err := s.checkpoints.commitBatch(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for _, op := range batch[:5] {
		if !written(t, s, op) {
			t.Errorf("run %s not written", op.p.Run.ID)
		}
	}
	if steps, err := s.StepList(t.Context(), held.RunID); err != nil || len(steps) != 1 {
		t.Errorf("steps of the checkpoint guarded by its holder: %v, %v; want one", steps, err)
	}
	held.Holder = "another"
	stranger := []*checkpointOp{batch[0], {ctx: context.Background(), p: held}}
	if err := s.checkpoints.commitBatch(t.Context(), stranger); !errors.Is(translate(err), routine.ErrConflict) {
		t.Errorf("a batch with a holder that holds nothing: %v, want ErrConflict", err)
	}
	steps, err := s.StepList(t.Context(), first.Run.ID)
	if err != nil || len(steps) != 1 || steps[0].State != routine.StateSucceeded || *steps[0].ExitCode != 0 {
		t.Errorf("steps of the run whose step was given twice: %v, %v; want one, succeeded", steps, err)
	}
}

// take never puts two checkpoints of one run in a batch (a statement
// writes a row once) nor more than maxCheckpoints, and keeps the order.
func TestGroupCheckpointTake(t *testing.T) {
	t.Parallel()
	g := &groupCheckpoint{}
	run := func(id string) *checkpointOp {
		return &checkpointOp{ctx: context.Background(), p: &store.CheckpointParams{RunID: id, Holder: "w"}}
	}
	a1, b, a2, c := run("a"), run("b"), run("a"), run("c")
	g.pending = []*checkpointOp{a1, b, a2, c}
	if got := g.take(); len(got) != 2 || got[0] != a1 || got[1] != b {
		t.Fatalf("first batch %v, want a1 b", got)
	}
	if got := g.take(); len(got) != 2 || got[0] != a2 || got[1] != c {
		t.Fatalf("second batch %v, want a2 c", got)
	}
	for i := range maxCheckpoints + 1 {
		g.pending = append(g.pending, run(fmt.Sprint(i)))
	}
	if got := g.take(); len(got) != maxCheckpoints || len(g.pending) != 1 {
		t.Fatalf("took %d, left %d; want %d and 1", len(got), len(g.pending), maxCheckpoints)
	}
}

// Checkpoints of many runs at once, some refused: each is written, or
// refused, as alone.
func TestCheckpointsConcurrent(t *testing.T) {
	t.Parallel()
	s := setupGroup(t)
	var ops []*checkpointOp
	for i := range 60 {
		worker := "w"
		if i%7 == 3 {
			worker = "another"
		}
		ops = append(ops, finished(heldRun(t, s), worker))
	}
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() { op.err = s.Checkpoint(t.Context(), op.p) })
	}
	wg.Wait()
	for _, op := range ops {
		held := op.p.Run.Worker == "w"
		if held && (op.err != nil || !written(t, s, op)) {
			t.Errorf("run %s: %v; want written", op.p.Run.ID, op.err)
		}
		if !held && (!errors.Is(op.err, routine.ErrConflict) || written(t, s, op)) {
			t.Errorf("run %s not held: %v; want ErrConflict and nothing written", op.p.Run.ID, op.err)
		}
	}
}
