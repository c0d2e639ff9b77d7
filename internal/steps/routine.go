package steps

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/routines-dev/routines/internal/routine"
)

// Subrun is what a routine step's call of another routine came to.
type Subrun struct {
	RunID   string
	State   routine.State
	Outputs routine.Outputs       // of its main steps, later ones overriding earlier
	Error   *routine.ErrorPayload // when it did not succeed
}

// RoutineKind calls another routine of the project and waits for it
// (Execution.Subrun, given by the engine).
type RoutineKind struct{}

// Name implements Kind.
func (RoutineKind) Name() string { return "routine" }

// Execute implements Kind.
func (RoutineKind) Execute(ctx context.Context, x *Execution) (*Result, error) {
	a := x.Action.Routine
	if a == nil {
		return nil, errors.New("routine: no routine: action")
	}
	if x.Subrun == nil {
		return nil, Fail("", false, errors.New("routine: sub-runs are not available here"))
	}
	sub, err := x.Subrun(ctx, a.Name, a.Input)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(x.Stdout, "%s: run %s %s\n", a.Name, sub.RunID, sub.State)
	out := maps.Clone(sub.Outputs)
	out["run_id"], out["state"] = sub.RunID, string(sub.State)
	if sub.State == routine.StateSucceeded {
		return &Result{Outputs: out}, nil
	}
	msg := fmt.Sprintf("routine %s: run %s %s", a.Name, sub.RunID, sub.State)
	if sub.Error != nil {
		msg += ": " + sub.Error.Message
	}
	// The sub-run retried what it could itself; calling it again would
	// start it over, so a retry of this step is the routine's choice.
	return &Result{Outputs: out}, Fail("", sub.Error != nil && sub.Error.Retryable, errors.New(msg))
}

var _ Kind = RoutineKind{}
