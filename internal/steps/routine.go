package steps

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// RoutineKind calls another routine of the project and waits for it
// (Execution.Subrun, given by the engine).
type RoutineKind struct{}

// Name implements Kind.
func (RoutineKind) Name() string { return "routine" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (RoutineKind) DirFree() {}

var _ stepkind.DirFree = RoutineKind{}

// Execute implements Kind.
func (RoutineKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Routine
	if a == nil {
		return nil, errors.New("routine: no routine: action")
	}
	if x.Subrun == nil {
		return nil, stepkind.Fail("", false, errors.New("routine: sub-runs are not available here"))
	}
	sub, err := x.Subrun(ctx, a.Name, a.Input)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(x.Stdout, "%s: run %s %s\n", a.Name, sub.RunID, sub.State)
	out := maps.Clone(sub.Outputs)
	out["run_id"], out["state"] = sub.RunID, string(sub.State)
	if sub.State == routine.StateSucceeded {
		return &stepkind.Result{Outputs: out}, nil
	}
	msg := fmt.Sprintf("routine %s: run %s %s", a.Name, sub.RunID, sub.State)
	if sub.Error != nil {
		msg += ": " + sub.Error.Message
	}
	// The sub-run retried what it could itself; calling it again would
	// start it over, so a retry of this step is the routine's choice.
	return &stepkind.Result{Outputs: out}, stepkind.Fail("", sub.Error != nil && sub.Error.Retryable, errors.New(msg))
}

var _ stepkind.Kind = RoutineKind{}
