package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/stepkind"
)

// Routines finds the routines a routine step may call; *scheduler.Catalog
// is one, and run-once gives one over the project's files.
type Routines interface {
	Get(name string) (*routine.Routine, bool)
}

// callChainKey carries the names of the routines whose routine steps led
// to a run, outermost first.
type callChainKey struct{}

func callChain(ctx context.Context) []string {
	chain, _ := ctx.Value(callChainKey{}).([]string)
	return chain
}

// subrun runs the routine name with input as a sub-run of this run's step
// and waits for it: a run of its own in the store, linked to this one by
// its trigger payload, executed here by the same engine. It is refused
// when the call would loop back to a routine already in the chain, or go
// deeper than routine.MaxCallDepth.
func (x *runExec) subrun(ctx context.Context, step, name string, input map[string]string) (*stepkind.Subrun, error) {
	chain := append(slices.Clone(callChain(ctx)), x.r.Name)
	if slices.Contains(chain, name) {
		return nil, stepkind.Fail("", false, fmt.Errorf("routine %s calls itself: %s", name, strings.Join(append(chain, name), " → ")))
	}
	if len(chain) >= routine.MaxCallDepth {
		return nil, stepkind.Fail("", false, fmt.Errorf("routine steps nest more than %d deep: %s", routine.MaxCallDepth, strings.Join(append(chain, name), " → ")))
	}
	if x.e.routines == nil {
		return nil, stepkind.Fail("", false, fmt.Errorf("routine %s: this engine runs no sub-routines", name))
	}
	// A routine of another namespace is not found: a team's routine
	// does not run another team's, with its secrets, on its input.
	r, ok := x.e.routines.Get(name)
	if !ok || r.Namespace != x.r.Namespace {
		return nil, stepkind.Fail("", false, fmt.Errorf("no routine %q in the project", name))
	}
	if err := r.CheckInput(input); err != nil {
		return nil, stepkind.Fail("", false, err)
	}
	payload, err := json.Marshal(routine.SubrunPayload{ParentRunID: x.run.ID, ParentRoutine: x.r.Name, ParentStep: step})
	if err != nil {
		return nil, err
	}
	// Recorded running, leased to the calling run's worker, which
	// executes it here: no other worker may claim it while the lease
	// holds, and once its worker dies it is taken over with its caller.
	st := context.WithoutCancel(ctx)
	req := &scheduler.Request{
		ID:      ulid.Make().String(),
		Routine: r,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerRoutine, Payload: payload},
		Input:   input,
		Running: true,
		Holder:  x.run.Worker,
	}
	if x.e.leases != nil && x.run.Worker != "" {
		req.Lease = x.e.leases.Lease()
		var release func()
		ctx, release = x.e.leases.Hold(ctx, req.ID)
		defer release()
	}
	run, _, err := x.e.queue.Enqueue(st, req)
	if err != nil {
		return nil, fmt.Errorf("record the sub-run of %s: %w", name, err)
	}
	done, err := x.e.Execute(context.WithValue(ctx, callChainKey{}, chain), r, run)
	if err != nil {
		return nil, fmt.Errorf("sub-run %s of %s: %w", run.ID, name, err)
	}
	recs, err := x.e.store.StepList(st, run.ID)
	if err != nil {
		return nil, fmt.Errorf("sub-run %s of %s: %w", run.ID, name, err)
	}
	outputs := routine.Outputs{}
	for _, rec := range recs {
		if rec.Phase == routine.PhaseMain {
			maps.Copy(outputs, rec.Outputs)
		}
	}
	return &stepkind.Subrun{RunID: run.ID, State: done.State, Outputs: outputs, Error: done.Error}, nil
}
