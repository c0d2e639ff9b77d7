package routinetest

import (
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// Coverage is what the tests of a routine exercised: its steps (main,
// on_failure, compensations), both outcomes of each if:, and the retries
// of each step that may retry.
type Coverage struct {
	Steps, StepsHit       int
	Branches, BranchesHit int // if: true and if: false of each conditional step
	Retries, RetriesHit   int // steps with retry: that needed a second attempt
	Missed                []string
}

// Summary is one line: "steps 7/9, if branches 3/4, retries 1/2".
func (c *Coverage) Summary() string {
	return fmt.Sprintf("steps %d/%d, if branches %d/%d, retries %d/%d", c.StepsHit, c.Steps, c.BranchesHit, c.Branches, c.RetriesHit, c.Retries)
}

// Cover measures what results (of tests of r) exercised.
func Cover(r *routine.Routine, results []*Result) *Coverage {
	ran, skipped, retried := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, res := range results {
		for _, s := range res.Steps {
			key := stepKey(s.Phase, s.ID)
			switch {
			case s.State == routine.StateSkipped:
				skipped[key] = true
			case s.Attempts > 0:
				ran[key] = true
			}
			if s.Attempts > 1 {
				retried[key] = true
			}
		}
	}
	c := &Coverage{}
	check := func(hit bool, counter, hits *int, what string) {
		*counter++
		if hit {
			*hits++
		} else {
			c.Missed = append(c.Missed, what)
		}
	}
	visit := func(key string, s *routine.Step) {
		check(ran[key], &c.Steps, &c.StepsHit, "step "+key)
		if s.If != "" {
			check(ran[key], &c.Branches, &c.BranchesHit, "if of "+key+" true")
			check(skipped[key], &c.Branches, &c.BranchesHit, "if of "+key+" false")
		}
		if s.Retry != nil && s.Retry.Attempts > 1 {
			check(retried[key], &c.Retries, &c.RetriesHit, "retry of "+key)
		}
	}
	for i := range r.Steps {
		s := &r.Steps[i]
		visit(s.ID, s)
		if s.Compensate != nil {
			check(ran["compensate:"+s.ID], &c.Steps, &c.StepsHit, "step compensate:"+s.ID)
		}
	}
	for i := range r.OnFailure {
		visit(r.OnFailure[i].ID, &r.OnFailure[i])
	}
	return c
}

// missed lists what was not covered, for the report.
func (c *Coverage) missed() string {
	if len(c.Missed) == 0 {
		return ""
	}
	return "not covered: " + strings.Join(c.Missed, ", ")
}
