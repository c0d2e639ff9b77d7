package cli

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/routines-dev/routines/internal/routine"
)

// checkCalls checks the routine steps of r and of the routines they call,
// down the whole chain: each names a routine get finds, with inputs it
// declares, and no chain of calls leads back to a routine already in it.
func checkCalls(r *routine.Routine, get func(string) (*routine.Routine, bool)) error {
	return walkCalls(r, get, []string{r.Name}, map[string]bool{})
}

func walkCalls(r *routine.Routine, get func(string) (*routine.Routine, bool), chain []string, done map[string]bool) error {
	if done[r.Name] {
		return nil
	}
	for _, call := range routineCalls(r) {
		if slices.Contains(chain, call.name) {
			return fmt.Errorf("%s: step %s calls %s, a cycle: %s", r.Name, call.step, call.name, strings.Join(append(chain, call.name), " → "))
		}
		callee, ok := get(call.name)
		if !ok {
			return fmt.Errorf("%s: step %s calls routine %q, which is not in the project", r.Name, call.step, call.name)
		}
		if err := callee.CheckInput(call.input); err != nil {
			return fmt.Errorf("%s: step %s: %w", r.Name, call.step, err)
		}
		if err := walkCalls(callee, get, append(chain, call.name), done); err != nil {
			return err
		}
	}
	done[r.Name] = true
	return nil
}

type call struct {
	step, name string
	input      map[string]string
}

// routineCalls lists the routine steps of r: main, on_failure and
// compensations.
func routineCalls(r *routine.Routine) []call {
	var calls []call
	for _, list := range [][]routine.Step{r.Steps, r.OnFailure} {
		for _, s := range list {
			for _, a := range []*routine.Action{&s.Action, s.Compensate} {
				if a != nil && a.Routine != nil {
					calls = append(calls, call{step: s.ID, name: a.Routine.Name, input: a.Routine.Input})
				}
			}
		}
	}
	return calls
}

// projectRoutines finds the routines of a project by name, for the
// routine steps of runs in the foreground: a routine's file is found,
// loaded and validated the first time it is asked for.
type projectRoutines struct {
	g    *globals
	root string

	mu    sync.Mutex
	found map[string]*routine.Routine
}

// Get implements engine.Routines.
func (p *projectRoutines) Get(name string) (*routine.Routine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.found[name]; ok {
		return r, true
	}
	path, err := findByName(p.root, name)
	if err != nil {
		return nil, false
	}
	r, err := p.g.load(path)
	if err != nil {
		return nil, false
	}
	if p.found == nil {
		p.found = map[string]*routine.Routine{}
	}
	p.found[name] = r
	return r, true
}
