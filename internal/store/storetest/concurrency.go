package storetest

import (
	"errors"
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

// exerciseFailAlone has writers whose writes fail (a taken run id, a
// checkpoint with a taken log seq) run beside writers whose writes succeed:
// a driver that shares transactions between concurrent writers must undo
// the failed ones alone, all of each and nothing of the others.
func exerciseFailAlone(t *testing.T, open func(t *testing.T) store.Store) {
	b := setup(t, open)
	taken := b.createRun(t, nil)
	line := routine.LogLine{RunID: taken.ID, Step: "s", Seq: 1, Time: at(0), Stream: routine.StreamStdout, Text: "first"}
	if err := b.s.LogAppend(b.ctx, []routine.LogLine{line}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		good []string
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range runsPerWriter {
				switch i % 3 {
				case 0: // a taken id
					_, err := b.s.RunCreate(b.ctx, &store.RunCreateParams{ID: taken.ID, Routine: "r", QueuedAt: at(0)})
					if !errors.Is(err, routine.ErrConflict) {
						t.Errorf("writer %d: create with a taken id: %v, want ErrConflict", w, err)
					}
				case 1: // a checkpoint whose log line takes a taken seq
					step := &routine.StepRun{RunID: taken.ID, ID: fmt.Sprintf("w%d-%d", w, i), Phase: routine.PhaseMain,
						Kind: "run", State: routine.StateSucceeded}
					err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Steps: []*routine.StepRun{step}, Logs: []routine.LogLine{line}})
					if !errors.Is(err, routine.ErrConflict) {
						t.Errorf("writer %d: checkpoint with a taken seq: %v, want ErrConflict", w, err)
					}
				default:
					run, err := b.s.RunCreate(b.ctx, &store.RunCreateParams{ID: newID(), Routine: "r", QueuedAt: at(time.Second)})
					if err != nil {
						t.Errorf("writer %d: create: %v", w, err)
						continue
					}
					mu.Lock()
					good = append(good, run.ID)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range good {
		b.getRun(t, id)
	}
	runs, err := b.s.RunList(b.ctx, &store.RunListParams{Limit: concurrentRuns})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(good)+1 {
		t.Errorf("%d runs stored, want %d", len(runs), len(good)+1)
	}
	b.listSteps(t, taken.ID, 0)
	b.checkLog(t, &store.LogListParams{RunID: taken.ID}, []routine.LogLine{line})
}
