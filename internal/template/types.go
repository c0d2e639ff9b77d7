package template

import (
	"strings"

	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"

	"github.com/routines-dev/routines/internal/routine"
)

// Types are what validate knows of the outputs of a routine's steps: the
// outputs of each step's kind (routine.StepOutputs). Expressions compile
// against outputs of any type, which they must navigate (json.id); checked
// against Types as well, text compared with a number or used as a
// condition is refused before a run, as it is for input and env. Types
// are not safe for concurrent use.
type Types struct {
	cfg *conf.Config
}

// NewTypes returns the types of the outputs of steps, by step id.
func NewTypes(steps map[string]*routine.Shape) *Types {
	byID := types.Map{types.Extra: types.Any}
	for id, s := range steps {
		byID[id] = types.Map{"outputs": typeOf(s), "status": types.String}
	}
	env := types.Map{
		RootInput:   types.TypeOf(map[string]string{}),
		RootEvent:   types.Any,
		RootEnv:     types.TypeOf(map[string]string{}),
		RootSteps:   byID,
		RootRun:     types.TypeOf(RunInfo{}),
		RootRoutine: types.TypeOf(RoutineInfo{}),
		RootFailure: types.TypeOf(&Failure{}),
	}
	return &Types{cfg: newConfig(env)}
}

// typeOf returns the expr-lang type of a shape. A number may be an int or
// a float, so it is any; so are the values of keys not known.
func typeOf(s *routine.Shape) types.Type {
	switch s.Type {
	case routine.ShapeString:
		return types.String
	case routine.ShapeBool:
		return types.Bool
	case routine.ShapeList:
		return types.Array(typeOf(s.Elem))
	case routine.ShapeObject:
		m := types.Map{types.Extra: types.Any}
		if s.Other != nil {
			m[types.Extra] = typeOf(s.Other)
		}
		for k, f := range s.Fields {
			m[k] = typeOf(f)
		}
		return m
	}
	return types.Any
}

// CheckTypes checks the expressions of t that read step outputs against
// ts. Errors are *Error located within the parsed string.
func (t *Template) CheckTypes(ts *Types) error {
	for i := range t.segments {
		if s := &t.segments[i]; s.expr != nil {
			if err := s.expr.checkTypes(ts, s.at, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckTypes checks the condition against ts, as Template.CheckTypes.
func (c *Condition) CheckTypes(ts *Types) error {
	if err := c.expr.checkTypes(ts, c.at, true); err != nil {
		return err
	}
	return nil
}

// checkTypes checks e, found at offset within the parsed string, against
// ts. A plain path is only read, and an expression that reads no step
// output was checked against the same types when it was compiled.
func (e *expression) checkTypes(ts *Types, offset int, asBool bool) *Error {
	if e.program == nil && !asBool || !readsOutputs(e.refs) {
		return nil
	}
	tree, err := parser.ParseWithConfig(e.src, ts.cfg)
	if err != nil {
		return offsetError(exprError(e.src, err), offset)
	}
	te := checkTree(tree, ts.cfg, e.src, asBool)
	switch {
	case te == nil:
	case strings.Contains(te.Msg, "mismatched types string"):
		// It compiled with outputs of any type: an output is the text.
		te.Msg += " (outputs such as status and count, and those of run steps, are text: read a number with int(…) or float(…))"
	case strings.HasSuffix(te.Msg, "but this is a string"):
		te.Msg += ": compare the output, as in == \"true\""
	}
	return offsetError(te, offset)
}

func readsOutputs(refs []Ref) bool {
	for _, r := range refs {
		if r.Root == RootSteps {
			return true
		}
	}
	return false
}

func offsetError(err *Error, offset int) *Error {
	if err != nil {
		err.Offset += offset
	}
	return err
}
