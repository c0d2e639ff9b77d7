package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Writers and runs per writer of the concurrency test.
const (
	writers        = 8
	runsPerWriter  = 50
	linesPerRun    = 3
	concurrentRuns = writers * runsPerWriter
)

func exerciseConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	b := setup(t, open)
	// Each writer takes a run through the engine's writes: create, start,
	// two step checkpoints, a batch of log lines, finish. A reader lists
	// and reads at the same time. A driver that lets writers collide
	// (SQLITE_BUSY, serialization failures) fails here.
	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		readerWG sync.WaitGroup
	)
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			runs, err := b.s.RunList(b.ctx, &store.RunListParams{Limit: 10})
			if err != nil {
				t.Errorf("RunList: %v", err)
				return
			}
			for _, r := range runs {
				if _, err := b.s.StepList(b.ctx, r.ID); err != nil {
					t.Errorf("StepList: %v", err)
					return
				}
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range runsPerWriter {
				if err := b.writeRun(w, i); err != nil {
					t.Errorf("writer %d run %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	readerWG.Wait()
	if t.Failed() {
		return
	}

	runs, err := b.s.RunList(b.ctx, &store.RunListParams{Limit: 2 * concurrentRuns})
	if err != nil {
		t.Fatalf("RunList: %v", err)
	}
	if len(runs) != concurrentRuns {
		t.Fatalf("got %d runs, want %d", len(runs), concurrentRuns)
	}
	for _, r := range runs {
		if r.State != routine.StateSucceeded {
			t.Errorf("run %s: state %s, want succeeded", r.ID, r.State)
		}
		steps, err := b.s.StepList(b.ctx, r.ID)
		if err != nil || len(steps) != 1 || steps[0].State != routine.StateSucceeded {
			t.Errorf("run %s: steps %s, %v; want one succeeded", r.ID, show(steps), err)
		}
		lines, err := b.s.LogList(b.ctx, &store.LogListParams{RunID: r.ID})
		if err != nil || len(lines) != linesPerRun {
			t.Errorf("run %s: %d lines, %v; want %d", r.ID, len(lines), err, linesPerRun)
		}
	}
}

func (b *testBundle) writeRun(w, i int) error {
	ctx := b.ctx
	queued := at(time.Duration(w*runsPerWriter+i) * time.Millisecond)
	run, err := b.s.RunCreate(ctx, &store.RunCreateParams{ID: newID(), Routine: fmt.Sprint("r", w),
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: queued})
	if err != nil {
		return err
	}
	run.State, run.Attempt, run.StartedAt = routine.StateRunning, 1, ptr(queued)
	if err := b.s.RunUpdate(ctx, run); err != nil {
		return err
	}
	step := &routine.StepRun{RunID: run.ID, ID: "s", Phase: routine.PhaseMain, Kind: "run",
		State: routine.StateRunning, StartedAt: ptr(queued)}
	if err := b.s.StepSave(ctx, step); err != nil {
		return err
	}
	var lines []routine.LogLine
	for n := range linesPerRun {
		lines = append(lines, routine.LogLine{RunID: run.ID, Step: "s", Seq: int64(n + 1), Time: queued,
			Stream: routine.StreamStdout, Text: "working"})
	}
	if err := b.s.LogAppend(ctx, lines); err != nil {
		return err
	}
	step.State, step.FinishedAt, step.ExitCode = routine.StateSucceeded, ptr(queued), ptr(0)
	if err := b.s.StepSave(ctx, step); err != nil {
		return err
	}
	run.State, run.FinishedAt = routine.StateSucceeded, ptr(queued)
	return b.s.RunUpdate(ctx, run)
}
