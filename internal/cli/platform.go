package cli

import (
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
)

// sandboxSupported reports whether this system runs confined processes at
// all: nil on Linux (see Deps.SandboxSupported).
func (g *globals) sandboxSupported() error {
	if g.deps.SandboxSupported != nil {
		return g.deps.SandboxSupported()
	}
	return sandbox.Supported()
}

// platformProblem refuses r, before anything runs, on a system without
// the sandbox when steps of r would start a process in it: it names them
// and says what to do. nil on Linux, and for a routine without such steps.
func (g *globals) platformProblem(r *routine.Routine) error {
	err := g.sandboxSupported()
	if err == nil {
		return nil
	}
	ids := confinedSteps(r)
	if len(ids) == 0 {
		return nil
	}
	noun := "step"
	if len(ids) > 1 {
		noun = "steps"
	}
	return fmt.Errorf("%s: %s %s: %w", r.File, noun, strings.Join(ids, ", "), err)
}

// confinedSteps are the ids of the steps of r that start a process in the
// sandbox: run steps and agent steps with an MCP server started by
// command, here or in their compensate.
func confinedSteps(r *routine.Routine) []string {
	var ids []string
	for _, list := range [][]routine.Step{r.Steps, r.OnFailure} {
		for i := range list {
			s := &list[i]
			if startsProcess(&s.Action) || s.Compensate != nil && startsProcess(s.Compensate) {
				ids = append(ids, s.ID)
			}
		}
	}
	return ids
}

func startsProcess(a *routine.Action) bool {
	if a.Run != "" {
		return true
	}
	if a.Agent != nil {
		for _, s := range a.Agent.MCP {
			if len(s.Command) > 0 {
				return true
			}
		}
	}
	return false
}
