package routinetest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// check returns what the result fails of the expectations, each as
// "<where>: got …, want …".
func (e *Expect) check(res *Result) []string {
	var f []string
	fail := func(where, format string, args ...any) {
		f = append(f, where+": "+fmt.Sprintf(format, args...))
	}
	run := res.Run
	if e.State != "" && string(run.State) != e.State {
		msg := ""
		if run.Error != nil {
			msg = " (" + run.Error.Code + ": " + run.Error.Message + ")"
		}
		fail("expect.state", "got %s%s, want %s", run.State, msg, e.State)
	}
	records := map[string]*routine.StepRun{}
	for _, s := range res.Steps {
		records[stepKey(s.Phase, s.ID)] = s
	}
	for _, key := range slices.Sorted(maps.Keys(e.Steps)) {
		want, got := e.Steps[key], records[key]
		where := "expect.steps." + key
		switch {
		case got == nil && want.State != "" && want.State != "pending":
			fail(where, "the step did not run, want %s", want.State)
		case got == nil:
		default:
			if want.State != "" && string(got.State) != want.State {
				fail(where+".state", "got %s, want %s", got.State, want.State)
			}
			if want.Attempts != 0 && got.Attempts != want.Attempts {
				fail(where+".attempts", "got %d, want %d", got.Attempts, want.Attempts)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(e.Outputs)) {
		step, name, ok := strings.Cut(key, ".")
		where := "expect.outputs." + key
		if !ok {
			fail(where, "write <step>.<output>")
			continue
		}
		rec := records[step]
		if rec == nil {
			fail(where, "step %s did not run", step)
			continue
		}
		v, found := rec.Outputs[name]
		if !found {
			fail(where, "no such output (outputs: %s)", strings.Join(slices.Sorted(maps.Keys(rec.Outputs)), ", "))
			continue
		}
		// A structured output is matched as the JSON text it renders to.
		got, m := routine.OutputText(v), e.Outputs[key]
		if want := m.Match(got); want != "" {
			fail(where, "got %q, want %s", got, want)
		}
	}
	e.checkCalls(res, fail)
	if ee := e.Error; ee != nil {
		got := run.Error
		switch {
		case got == nil:
			fail("expect.error", "the run has no error, want one")
		default:
			if ee.Code != "" && got.Code != ee.Code {
				fail("expect.error.code", "got %s, want %s", got.Code, ee.Code)
			}
			if ee.Step != "" && got.Step != ee.Step {
				fail("expect.error.step", "got %q, want %s", got.Step, ee.Step)
			}
			if ee.Message.set() {
				if want := ee.Message.Match(got.Message); want != "" {
					fail("expect.error.message", "got %q, want %s", got.Message, want)
				}
			}
		}
	}
	if e.Order != nil {
		if got := order(res.Calls); !slices.Equal(got, e.Order) {
			fail("expect.order", "got [%s], want [%s]", strings.Join(got, ", "), strings.Join(e.Order, ", "))
		}
	}
	return f
}

// checkCalls compares the calls of each step with the expected ones.
func (e *Expect) checkCalls(res *Result, fail func(where, format string, args ...any)) {
	byStep := map[string][]Call{}
	for _, c := range res.Calls {
		byStep[c.Step] = append(byStep[c.Step], c)
	}
	for _, step := range slices.Sorted(maps.Keys(e.Calls)) {
		want, got := e.Calls[step], byStep[step]
		where := "expect.calls." + step
		if len(got) != len(want) {
			fail(where, "got %d call(s), want %d", len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			for _, path := range slices.Sorted(maps.Keys(want[i])) {
				m := want[i][path]
				v, ok := got[i].Fields[path]
				w := where + "[" + strconv.Itoa(i) + "]." + path
				if !ok {
					fail(w, "the call has no %s (fields: %s)", path, strings.Join(slices.Sorted(maps.Keys(got[i].Fields)), ", "))
				} else if wantS := m.Match(v); wantS != "" {
					fail(w, "got %q, want %s", v, wantS)
				}
			}
		}
	}
}

// order lists the steps of calls in the order each first started.
func order(calls []Call) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range calls {
		if !seen[c.Step] {
			seen[c.Step] = true
			out = append(out, c.Step)
		}
	}
	return out
}
