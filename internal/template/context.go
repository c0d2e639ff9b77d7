package template

import (
	"reflect"
	"sort"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// The roots an expression may start from, and RootNamed, the root of the
// references made by {{NAME}}.
const (
	RootInput   = "input"
	RootEvent   = "event"
	RootEnv     = "env"
	RootSteps   = "steps"
	RootRun     = "run"
	RootRoutine = "routine"
	RootFailure = "failure"
	RootNamed   = "named"
)

// Roots lists the names an expression may start from.
var Roots = []string{RootInput, RootEvent, RootEnv, RootSteps, RootRun, RootRoutine, RootFailure}

// Context is what expressions see while a step is rendered. The engine fills
// one per step; the zero value is valid (every map empty).
type Context struct {
	Input   map[string]string      `expr:"input"`
	Event   any                    `expr:"event"`
	Env     map[string]string      `expr:"env"`
	Steps   map[string]StepContext `expr:"steps"`
	Run     RunInfo                `expr:"run"`
	Routine RoutineInfo            `expr:"routine"`
	// Failure is set only while on_failure steps run.
	Failure *Failure `expr:"failure"`
	// Secrets holds the resolved secrets; only {{NAME}} reads them.
	Secrets map[string]string `expr:"-"`
}

// StepContext is steps.<id>: what an earlier step left behind.
type StepContext struct {
	Outputs routine.Outputs `expr:"outputs" json:"outputs"`
	Status  string          `expr:"status" json:"status"`
}

// RunInfo is run: the run being executed.
type RunInfo struct {
	ID      string `expr:"id" json:"id"`
	Attempt int    `expr:"attempt" json:"attempt"`
}

// RoutineInfo is routine: the routine being run.
type RoutineInfo struct {
	Name     string `expr:"name" json:"name"`
	Revision string `expr:"revision" json:"revision"`
}

// Failure is failure: the standard error payload of the failed run, as the
// on_failure steps see it.
type Failure struct {
	Code       string `expr:"code" json:"code"`
	Message    string `expr:"message" json:"message"`
	RunID      string `expr:"run_id" json:"run_id"`
	Step       string `expr:"step" json:"step"`
	Attempt    int    `expr:"attempt" json:"attempt"`
	ExitCode   int    `expr:"exit_code" json:"exit_code"`
	Retryable  bool   `expr:"retryable" json:"retryable"`
	StderrTail string `expr:"stderr_tail" json:"stderr_tail"`
}

// FailureOf turns an error payload into the failure context; nil stays nil.
func FailureOf(p *routine.ErrorPayload) *Failure {
	if p == nil {
		return nil
	}
	f := &Failure{
		Code:       p.Code,
		Message:    p.Message,
		RunID:      p.RunID,
		Step:       p.Step,
		Attempt:    p.Attempt,
		Retryable:  p.Retryable,
		StderrTail: p.StderrTail,
	}
	if p.ExitCode != nil {
		f.ExitCode = *p.ExitCode
	}
	return f
}

// Fields of the typed roots and of steps.<id>, read from the expr tags so
// the checks below cannot drift from what the evaluator accepts.
var (
	stepFields    = exprFields(reflect.TypeFor[StepContext]())
	runFields     = exprFields(reflect.TypeFor[RunInfo]())
	routineFields = exprFields(reflect.TypeFor[RoutineInfo]())
	failureFields = exprFields(reflect.TypeFor[Failure]())
)

func exprFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("expr"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
