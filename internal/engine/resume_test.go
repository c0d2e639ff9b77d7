package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store"
)

// interrupted records a run of yaml as a crash leaves it: running, at
// attempt 1, with the given step records and one log line per record, and
// returns the routine and the run as the store has it.
func (b *testBundle) interrupted(t *testing.T, yaml string, recs ...*routine.StepRun) (*routine.Routine, *routine.Run) {
	t.Helper()
	ctx := t.Context()
	r, err := spec.Parse("routine.yaml", []byte(yaml), b.dir)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	run, err := b.store.RunCreate(ctx, &store.RunCreateParams{
		ID: fmt.Sprintf("01TEST%020d", time.Now().UnixNano()), Routine: r.Name, Revision: r.Revision,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	run.State, run.Attempt, run.StartedAt = routine.StateRunning, 1, &started
	if err := b.store.RunUpdate(ctx, run); err != nil {
		t.Fatal(err)
	}
	var lines []routine.LogLine
	for i, rec := range recs {
		rec.RunID = run.ID
		if rec.Phase == "" {
			rec.Phase = routine.PhaseMain
		}
		rec.Kind = "run"
		lines = append(lines, routine.LogLine{RunID: run.ID, Step: rec.ID, Seq: int64(i + 1), Time: started,
			Stream: routine.StreamStdout, Text: "before the crash"})
	}
	if err := b.store.Checkpoint(ctx, &store.CheckpointParams{Steps: recs, Logs: lines}); err != nil {
		t.Fatal(err)
	}
	run, err = b.store.RunGet(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r, run
}

// resume executes the run again and returns it and its records as stored.
func (b *testBundle) resume(t *testing.T, e *engine.Engine, r *routine.Routine, run *routine.Run) (*routine.Run, []*routine.StepRun) {
	t.Helper()
	ctx := t.Context()
	run, err := e.Execute(ctx, r, run)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	stored, err := b.store.RunGet(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := b.store.StepList(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stored, recs
}

// logText returns the run's log as "step|stream|text" lines.
func (b *testBundle) logText(t *testing.T, runID string) string {
	t.Helper()
	lines, err := b.store.LogList(t.Context(), &store.LogListParams{RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, l := range lines {
		if l.Seq != int64(i+1) {
			t.Errorf("line %d has seq %d", i+1, l.Seq)
		}
		out = append(out, l.Step+"|"+string(l.Stream)+"|"+l.Text)
	}
	return strings.Join(out, "\n")
}

func TestResumeSkipsSucceededSteps(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	r, run := b.interrupted(t, `
name: resume
steps:
  - id: a
    run: out greeting=fresh
  - id: b
    run: say {{ steps.a.outputs.greeting }} there
  - id: c
    run: out last=yes
`, &routine.StepRun{ID: "a", State: routine.StateSucceeded, Attempts: 1,
		Outputs: routine.Outputs{"greeting": "hi"}})

	run, recs := b.resume(t, e, r, run)
	if run.State != routine.StateSucceeded || run.Error != nil {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if run.Attempt != 2 {
		t.Errorf("attempt %d, want 2", run.Attempt)
	}
	if got := strings.Join(b.kind.order, ","); got != "b,c" {
		t.Fatalf("ran %s, want b,c", got)
	}
	if got := stepStates(recs); got != "a=succeeded b=succeeded c=succeeded" {
		t.Fatalf("steps %s", got)
	}
	if recs[0].Outputs["greeting"] != "hi" || recs[2].Outputs["last"] != "yes" {
		t.Errorf("outputs: a %v, c %v", recs[0].Outputs, recs[2].Outputs)
	}
	want := "a|stdout|before the crash\n|system|resuming: 1 step(s) already done\nb|stdout|hi there"
	if got := b.logText(t, run.ID); got != want {
		t.Errorf("log\n%s\nwant\n%s", got, want)
	}
}

func TestResumeDAG(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	// a and b are done (b skipped); d was never started. c waits for both
	// done steps, d for c, e for nothing.
	r, run := b.interrupted(t, `
name: resume-dag
parallelism: 4
steps:
  - id: a
    needs: []
    run: out n=1
  - id: b
    needs: []
    if: "false"
    run: ok
  - id: c
    needs: [a, b]
    run: say a={{ steps.a.outputs.n }} b={{ steps.b.status }}
  - id: d
    needs: [c]
    run: ok
  - id: e
    needs: []
    run: ok
`, &routine.StepRun{ID: "a", State: routine.StateSucceeded, Attempts: 1, Outputs: routine.Outputs{"n": "7"}},
		&routine.StepRun{ID: "b", State: routine.StateSkipped})

	run, recs := b.resume(t, e, r, run)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	ran := map[string]bool{}
	for _, id := range b.kind.order {
		if ran[id] {
			t.Errorf("%s ran twice: %v", id, b.kind.order)
		}
		ran[id] = true
	}
	if len(ran) != 3 || !ran["c"] || !ran["d"] || !ran["e"] {
		t.Fatalf("ran %v, want c, d and e", b.kind.order)
	}
	if got := stepStates(recs); got != "a=succeeded b=skipped c=succeeded d=succeeded e=succeeded" &&
		got != "a=succeeded b=skipped c=succeeded e=succeeded d=succeeded" &&
		got != "a=succeeded b=skipped e=succeeded c=succeeded d=succeeded" {
		t.Fatalf("steps %s", got)
	}
	lines, err := b.store.LogList(t.Context(), &store.LogListParams{RunID: run.ID, Step: "c"})
	if err != nil || len(lines) != 1 || lines[0].Text != "a=7 b=skipped" {
		t.Fatalf("log of c: %+v %v", lines, err)
	}
}

func TestResumeRerunsUnfinishedStep(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	// b was running its second attempt when the process died.
	r, run := b.interrupted(t, `
name: resume-running
steps:
  - id: a
    run: ok
  - id: b
    run: flaky 1
    retry: { attempts: 4, backoff: constant, initial: 1s, jitter: false }
  - id: c
    run: ok
`, &routine.StepRun{ID: "a", State: routine.StateSucceeded, Attempts: 1},
		&routine.StepRun{ID: "b", State: routine.StateRunning, Attempts: 2})

	run, recs := b.resume(t, e, r, run)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	// b fails its first try in this process (attempt 3), then succeeds (4).
	if got := strings.Join(b.kind.order, ","); got != "b,b,c" {
		t.Fatalf("ran %s, want b,b,c", got)
	}
	if got := stepStates(recs); got != "a=succeeded b=succeeded c=succeeded" {
		t.Fatalf("steps %s", got)
	}
	if recs[1].Attempts != 4 {
		t.Errorf("b: %d attempts, want 4", recs[1].Attempts)
	}
}

func TestResumeSpentRetriesStillTryOnce(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	// b failed for good, then the process died during compensation: b
	// runs once more, fails, and a is compensated.
	r, run := b.interrupted(t, `
name: resume-failed
steps:
  - id: a
    run: ok
    compensate: { run: say undo a }
  - id: b
    run: fail 3
    retry: { attempts: 2, jitter: false }
`, &routine.StepRun{ID: "a", State: routine.StateSucceeded, Attempts: 1},
		&routine.StepRun{ID: "b", State: routine.StateFailed, Attempts: 2})

	run, recs := b.resume(t, e, r, run)
	if run.State != routine.StateFailed || run.Error == nil || run.Error.Step != "b" || run.Error.Attempt != 3 {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := strings.Join(b.kind.order, ","); got != "b,a" {
		t.Fatalf("ran %s, want b then the compensation of a", got)
	}
	if got := stepStates(recs); got != "a=succeeded b=failed compensate:a=succeeded" {
		t.Fatalf("steps %s", got)
	}
}
