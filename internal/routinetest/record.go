package routinetest

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"github.com/routines-dev/routines/internal/routine"
)

// Record turns a past run of r into a test: its input and trigger event,
// a mock of each step of a kind that reaches outside with what the run
// got from it (a failure per failed attempt, then its outputs or its
// error), and expectations of what the run produced. Outputs come from
// the store, where secrets are redacted already.
func Record(r *routine.Routine, run *routine.Run, recs []*routine.StepRun) *Case {
	c := &Case{
		Name:  "recorded from run " + run.ID,
		Input: run.Input,
		Mocks: map[string]Mock{},
		Expect: Expect{
			State:   string(run.State),
			Steps:   map[string]StepExpect{},
			Outputs: map[string]Matcher{},
		},
	}
	if len(run.Trigger.Payload) > 0 {
		var event any
		if json.Unmarshal(run.Trigger.Payload, &event) == nil {
			c.Event = event
		}
	}
	kinds := stepKinds(r)
	for _, rec := range recs {
		key := stepKey(rec.Phase, rec.ID)
		if rec.State == routine.StateSkipped || rec.Attempts == 0 {
			c.Expect.Steps[key] = StepExpect{State: string(rec.State)}
			continue
		}
		c.Expect.Steps[key] = StepExpect{State: string(rec.State), Attempts: rec.Attempts}
		if rec.Phase != routine.PhaseCompensate {
			for k, v := range rec.Outputs {
				c.Expect.Outputs[rec.ID+"."+k] = exactly(routine.OutputText(v))
			}
		}
		if isExternal(kinds[key]) {
			c.Mocks[key] = recordedMock(rec)
		}
	}
	if run.Error != nil {
		c.Expect.Error = &ErrorExpect{Code: run.Error.Code, Step: run.Error.Step, Message: exactly(run.Error.Message)}
	}
	return c
}

// recordedMock replays what a step got in a recorded run: a failure per
// attempt that failed, then its last result.
func recordedMock(rec *routine.StepRun) Mock {
	var m Mock
	for n := 1; n < rec.Attempts; n++ {
		m.Tries = append(m.Tries, Try{Fail: &Failure{Message: fmt.Sprintf("attempt %d failed in the recorded run (its error was not kept)", n)}})
	}
	last := Try{Outputs: rec.Outputs}
	if rec.State != routine.StateSucceeded && rec.Error != nil {
		retryable := rec.Error.Retryable
		last = Try{Fail: &Failure{Message: rec.Error.Message, Code: rec.Error.Code, Retryable: &retryable}}
	}
	m.Tries = append(m.Tries, last)
	return m
}

// stepKinds maps the step keys of r to their kinds.
func stepKinds(r *routine.Routine) map[string]string {
	kinds := map[string]string{}
	for _, s := range r.Steps {
		kinds[s.ID] = s.Kind()
		if s.Compensate != nil {
			kinds["compensate:"+s.ID] = s.Compensate.Kind()
		}
	}
	for _, s := range r.OnFailure {
		kinds[s.ID] = s.Kind()
	}
	return kinds
}

func exactly(s string) Matcher { return Matcher{Equals: &s} }

// WriteYAML writes cases as a test file.
func WriteYAML(w io.Writer, cases []*Case) error {
	b, err := yaml.MarshalWithOptions(cases, yaml.UseLiteralStyleIfMultiline(true))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// MarshalYAML writes a mock as one try or a list of them.
func (m Mock) MarshalYAML() (any, error) {
	if len(m.Tries) == 1 {
		return m.Tries[0], nil
	}
	return m.Tries, nil
}

// MarshalYAML writes a step expectation as its state alone when that is
// all it checks.
func (s StepExpect) MarshalYAML() (any, error) {
	if s.Attempts == 0 {
		return s.State, nil
	}
	type plain StepExpect
	return plain(s), nil
}

// MarshalYAML writes a matcher as a string, or its one check.
func (m Matcher) MarshalYAML() (any, error) {
	switch {
	case m.Equals != nil:
		return *m.Equals, nil
	case m.Regex != "":
		return map[string]string{"regex": m.Regex}, nil
	case m.Contains != "":
		return map[string]string{"contains": m.Contains}, nil
	}
	return map[string]string{"expr": m.Expr}, nil
}
