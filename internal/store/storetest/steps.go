package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseSteps(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("SaveListEveryField", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		full := &routine.StepRun{
			RunID: run.ID, ID: "ticket", Phase: routine.PhaseMain, Kind: "http", State: routine.StateFailed,
			Attempts: 5, ExitCode: ptr(3), StartedAt: ptr(at(time.Second)), FinishedAt: ptr(at(3 * time.Second)),
			DurationMs: 2000, Outputs: routine.Outputs{"status": "500", "body": "line 1\nline 2", "empty": ""},
			CPUMs: 17, MaxRSSKB: 20480,
			Usage: routine.Usage{GBSeconds: 0.04, BytesSent: 512, BytesReceived: 2048,
				Tokens: map[string]routine.Tokens{"m1": {Input: 10, Output: 20}}},
			Error: &routine.ErrorPayload{Code: routine.CodeStepFailed, Message: "HTTP 500", RunID: run.ID,
				Step: "ticket", Attempt: 5, Retryable: true},
		}
		// Zero exit code and empty outputs are kept apart from nil ones.
		bare := &routine.StepRun{RunID: run.ID, ID: "notify", Phase: routine.PhaseMain, Kind: "slack",
			State: routine.StateRunning, ExitCode: ptr(0), Outputs: routine.Outputs{}}
		for _, st := range []*routine.StepRun{full, bare} {
			if err := b.s.StepSave(b.ctx, st); err != nil {
				t.Fatalf("StepSave(%s): %v", st.ID, err)
			}
		}
		steps := b.listSteps(t, run.ID, 2)
		checkStep(t, steps[0], full)
		bare.Outputs = nil
		checkStep(t, steps[1], bare)
	})

	t.Run("StructuredOutputsRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		// What steps produce: text, and structured values as
		// routine.DecodeJSON decodes them, which must read back the same
		// Go values (a resumed run navigates them).
		json, err := routine.DecodeJSON([]byte(`{"id": 12345678901234, "big": 123456789012345678901234567890,
			"ratio": 0.25, "whole": 2.0, "ok": true, "none": null, "tags": ["a", "é"], "nested": {"q": "say \"hi\"\n"}}`))
		if err != nil {
			t.Fatal(err)
		}
		st := &routine.StepRun{RunID: run.ID, ID: "h", Phase: routine.PhaseMain, Kind: "http", State: routine.StateSucceeded,
			Outputs: routine.Outputs{
				"status": "200", "json": json, "empty": nil, "text_of_json": `{"id":1}`,
				"headers": map[string]any{"content-type": "application/json"},
				"rows":    []any{map[string]any{"email": "a@x.test", "n": 1}, map[string]any{"email": nil, "n": 2.5}},
			}}
		if err := b.s.StepSave(b.ctx, st); err != nil {
			t.Fatal(err)
		}
		checkStep(t, b.listSteps(t, run.ID, 1)[0], st)
	})

	t.Run("ReplaceKeepsFirstSaveOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		save := func(id string, state routine.State) *routine.StepRun {
			st := &routine.StepRun{RunID: run.ID, ID: id, Phase: routine.PhaseMain, Kind: "run", State: state}
			if state.Final() {
				st.FinishedAt = ptr(at(time.Minute))
				st.ExitCode = ptr(0)
				st.Outputs = routine.Outputs{"k": id}
			}
			if err := b.s.StepSave(b.ctx, st); err != nil {
				t.Fatalf("StepSave(%s): %v", id, err)
			}
			return st
		}
		// Ids out of alphabetical order, so the order is the save order.
		save("m", routine.StateRunning)
		save("b", routine.StateRunning)
		m := save("m", routine.StateSucceeded)
		z := save("z", routine.StateSkipped)
		bb := save("b", routine.StateFailed)
		steps := b.listSteps(t, run.ID, 3)
		checkStep(t, steps[0], m)
		checkStep(t, steps[1], bb)
		checkStep(t, steps[2], z)
	})

	t.Run("PhasesAreDistinct", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		var want []*routine.StepRun
		for _, ph := range []routine.Phase{routine.PhaseMain, routine.PhaseCompensate, routine.PhaseOnFailure} {
			st := &routine.StepRun{RunID: run.ID, ID: "x", Phase: ph, Kind: "run", State: routine.StateSucceeded}
			if err := b.s.StepSave(b.ctx, st); err != nil {
				t.Fatalf("StepSave(%s): %v", ph, err)
			}
			want = append(want, st)
		}
		steps := b.listSteps(t, run.ID, 3)
		for i := range want {
			checkStep(t, steps[i], want[i])
		}
	})

	t.Run("RunsAreDistinct", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		r1, r2 := b.createRun(t, nil), b.createRun(t, nil)
		s1 := &routine.StepRun{RunID: r1.ID, ID: "x", Phase: routine.PhaseMain, State: routine.StateRunning}
		s2 := &routine.StepRun{RunID: r2.ID, ID: "x", Phase: routine.PhaseMain, State: routine.StateFailed}
		for _, st := range []*routine.StepRun{s1, s2} {
			if err := b.s.StepSave(b.ctx, st); err != nil {
				t.Fatalf("StepSave: %v", err)
			}
		}
		checkStep(t, b.listSteps(t, r1.ID, 1)[0], s1)
		checkStep(t, b.listSteps(t, r2.ID, 1)[0], s2)
	})

	t.Run("ListUnknownRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.listSteps(t, newID(), 0)
	})

	t.Run("SaveUnknownRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		err := b.s.StepSave(b.ctx, &routine.StepRun{RunID: newID(), ID: "x", Phase: routine.PhaseMain,
			State: routine.StateRunning})
		if !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("StepSave for a missing run: got %v, want ErrNotFound", err)
		}
	})
}

// listSteps returns the steps of a run and fails unless there are n.
func (b *testBundle) listSteps(t *testing.T, runID string, n int) []*routine.StepRun {
	t.Helper()
	steps, err := b.s.StepList(b.ctx, runID)
	if err != nil {
		t.Fatalf("StepList(%s): %v", runID, err)
	}
	if len(steps) != n {
		t.Fatalf("StepList(%s): got %d steps, want %d: %s", runID, len(steps), n, show(steps))
	}
	return steps
}
