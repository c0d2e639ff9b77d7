package spec

import (
	"slices"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/suggest"
)

// order is the wait graph of one step list: a step waits for the steps it
// needs, or, without needs:, for the step before it.
type order struct {
	index    map[string]int // step id → position in the list
	deps     [][]int        // what each step waits for
	implicit []bool         // the step waits for the one before it
	before   [][]bool       // before[i][j]: step j has finished whenever step i starts
}

// graph checks the needs: of a list and returns its wait graph. other holds
// the ids of the other list, to explain why they cannot be named.
func (v *validator) graph(l stepList, other []string) *order {
	n := len(l.steps)
	o := &order{index: map[string]int{}, deps: make([][]int, n), implicit: make([]bool, n), before: make([][]bool, n)}
	for i, s := range l.steps {
		if _, dup := o.index[s.ID]; s.ID != "" && !dup {
			o.index[s.ID] = i
		}
	}
	for i := range l.steps {
		s := &l.steps[i]
		needs, ok := s.NeedsList()
		if !ok {
			if i > 0 {
				o.deps[i], o.implicit[i] = []int{i - 1}, true
			}
			continue
		}
		seen := map[string]bool{}
		for j, need := range needs {
			np := l.stepPath(i) + ".needs[" + strconv.Itoa(j) + "]"
			idx, known := o.index[need]
			switch {
			case need == s.ID:
				v.errorf(np, "step %q needs itself", s.ID)
			case seen[need]:
				v.errorf(np, "needs names %q twice", need)
			case known:
				o.deps[i] = append(o.deps[i], idx)
			case slices.Contains(other, need) && l.onFailure:
				v.errorf(np, "needs: %q is a main step; on_failure steps start after the main steps, so needs names only on_failure steps", need)
			case slices.Contains(other, need):
				v.errorf(np, "needs: %q is an on_failure step, which runs only after the main steps", need)
			default:
				v.errorf(np, "needs: unknown step %q%s", need, suggest.DidYouMean(need, l.ids()))
			}
			seen[need] = true
		}
	}
	v.cycles(l, o)
	for i := range l.steps {
		o.finishedBefore(i, make([]bool, n))
	}
	return o
}

// cycles reports each cycle of the wait graph once.
func (v *validator) cycles(l stepList, o *order) {
	state := make([]int, len(l.steps)) // 0 unseen, 1 on the stack, 2 done
	reported := make([]bool, len(l.steps))
	var stack []int
	var visit func(u int)
	visit = func(u int) {
		state[u] = 1
		stack = append(stack, u)
		for _, w := range o.deps[u] {
			switch state[w] {
			case 0:
				visit(w)
			case 1:
				cycle := stack[slices.Index(stack, w):]
				if !slices.ContainsFunc(cycle, func(i int) bool { return !reported[i] }) {
					continue
				}
				names := make([]string, 0, len(cycle)+1)
				implicit := false
				for _, i := range cycle {
					reported[i] = true
					names = append(names, l.steps[i].ID)
					implicit = implicit || o.implicit[i]
				}
				names = append(names, l.steps[w].ID)
				msg := "needs form a cycle: " + strings.Join(names, " → ")
				if implicit {
					msg += " (a step without needs: waits for the one before it)"
				}
				v.errorf(l.stepPath(u)+".needs", "%s", msg)
			}
		}
		stack = stack[:len(stack)-1]
		state[u] = 2
	}
	for i := range l.steps {
		if state[i] == 0 {
			visit(i)
		}
	}
}

// finishedBefore computes before[i], the steps step i transitively waits
// for. visiting guards against cycles, which are reported elsewhere.
func (o *order) finishedBefore(i int, visiting []bool) []bool {
	if o.before[i] != nil || visiting[i] {
		return o.before[i]
	}
	visiting[i] = true
	set := make([]bool, len(o.deps))
	for _, d := range o.deps[i] {
		set[d] = true
		for j, ok := range o.finishedBefore(d, visiting) {
			set[j] = set[j] || ok
		}
	}
	o.before[i] = set
	return set
}

// finished reports whether step id has finished whenever step i starts.
func (o *order) finished(i int, id string) bool {
	j, ok := o.index[id]
	return ok && o.before[i][j]
}
