package engine

import (
	"context"
	"fmt"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/template"
)

// resumeState is what a run started before (and interrupted, by a crash or
// a stop) left in the store: the main steps that need not run again and
// the attempts the others already used.
type resumeState struct {
	// done holds the main steps recorded succeeded or skipped, by id;
	// order lists them in the order they were first recorded.
	done  map[string]*routine.StepRun
	order []*routine.StepRun
	// attempts holds the attempts recorded for the other main steps, by
	// id: such a step runs again from its start, and its attempt numbers
	// (and its retry budget) go on from there.
	attempts map[string]int
	// lastSeq is the greatest log Seq of the run: new lines go after it.
	lastSeq int64
	// usage holds what the steps that run again (of every phase) used in
	// earlier attempts, and total what all recorded steps used: the run's
	// usage goes on from there, so a crash loses none of it.
	usage map[stepKey]routine.Usage
	total routine.Usage
}

// logPage is how many log lines resume reads at a time to find the last Seq.
const logPage = 4096

// loadResume reads the records of a run that was started before. Only main
// steps are resumed: compensation and on_failure are run again in full if
// the run fails again.
func loadResume(ctx context.Context, st store.Store, runID string) (*resumeState, error) {
	recs, err := st.StepList(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("resume run: %w", err)
	}
	rs := &resumeState{done: map[string]*routine.StepRun{}, attempts: map[string]int{}, usage: map[stepKey]routine.Usage{}}
	for _, rec := range recs {
		rs.total.Add(rec.Usage)
		if rec.Phase != routine.PhaseMain || (rec.State != routine.StateSucceeded && rec.State != routine.StateSkipped) {
			rs.usage[stepKey{rec.Phase, rec.ID}] = rec.Usage
		}
		if rec.Phase != routine.PhaseMain {
			continue
		}
		switch rec.State {
		case routine.StateSucceeded, routine.StateSkipped:
			rs.done[rec.ID] = rec
			rs.order = append(rs.order, rec)
		default:
			rs.attempts[rec.ID] = rec.Attempts
		}
	}
	// The run's lines are numbered 1, 2, …; the store has no "last line"
	// query, and a resume is rare, so page through them.
	for {
		lines, err := st.LogList(ctx, &store.LogListParams{RunID: runID, AfterSeq: rs.lastSeq, Limit: logPage})
		if err != nil {
			return nil, fmt.Errorf("resume run: %w", err)
		}
		if len(lines) == 0 {
			break
		}
		rs.lastSeq = lines[len(lines)-1].Seq
		if len(lines) < logPage {
			break
		}
	}
	return rs, nil
}

// applyResume publishes the outputs and status of the steps already done
// to the template context, as if they had just finished, and puts those
// with a compensate action on the list to undo should the run fail now.
// It returns how many steps are done.
func (x *runExec) applyResume(rs *resumeState) int {
	x.resume = rs
	x.log.seq = rs.lastSeq
	// The run's usage is its steps' as recorded: the run record of an
	// attempt that crashed was not written with what its steps used.
	x.run.Usage = rs.total
	index := make(map[string]*routine.Step, len(x.r.Steps))
	for i := range x.r.Steps {
		index[x.r.Steps[i].ID] = &x.r.Steps[i]
	}
	n := 0
	x.mu.Lock()
	defer x.mu.Unlock()
	// In record order, which is the order the steps started: close enough
	// to the order they finished for compensation, which undoes in reverse.
	for _, rec := range rs.order {
		s, ok := index[rec.ID]
		if !ok {
			// A step the routine no longer has is not done: forget it.
			delete(rs.done, rec.ID)
			continue
		}
		n++
		x.tctx.Steps[s.ID] = template.StepContext{Outputs: rec.Outputs, Status: string(rec.State)}
		if rec.State == routine.StateSucceeded && s.Compensate != nil {
			x.completed = append(x.completed, s)
		}
	}
	return n
}

// doneBefore reports whether a step of the phase finished in an earlier
// attempt of the run.
func (x *runExec) doneBefore(phase routine.Phase, id string) bool {
	if x.resume == nil || phase != routine.PhaseMain {
		return false
	}
	_, ok := x.resume.done[id]
	return ok
}

// attemptsBefore returns how many attempts of a step of the phase earlier
// attempts of the run used without finishing it.
func (x *runExec) attemptsBefore(phase routine.Phase, id string) int {
	if x.resume == nil || phase != routine.PhaseMain {
		return 0
	}
	return x.resume.attempts[id]
}
