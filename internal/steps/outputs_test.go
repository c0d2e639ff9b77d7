package steps

import (
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

// wantShape fails unless the outputs of a step of kind are what
// routine.StepOutputs says they are, which validate checks paths against
// and docs/routine.md shows: every output it names there, no other unless
// the kind has outputs by any name, each value of its type.
func wantShape(t *testing.T, kind string, out routine.Outputs) {
	t.Helper()
	shape := routine.StepOutputs(kind)
	for name := range shape.Fields {
		if _, ok := out[name]; !ok {
			t.Errorf("%s outputs: no %s (outputs %v)", kind, name, out)
		}
	}
	for name, v := range out {
		if f := shape.Field(name); f == nil {
			t.Errorf("%s outputs: %s is not an output of the kind (routine.StepOutputs)", kind, name)
		} else if msg := shapeMismatch(f, v); msg != "" {
			t.Errorf("%s outputs: %s: %s", kind, name, msg)
		}
	}
}

// shapeMismatch says how v is not of shape s, or "".
func shapeMismatch(s *routine.Shape, v any) string {
	t := routine.ShapeTypeOf(v)
	if s.Type == routine.ShapeAny || v == nil && s.Type != routine.ShapeString {
		return ""
	}
	if t != s.Type {
		return "is " + t.String() + ", want " + s.Type.String()
	}
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if msg := shapeMismatch(s.Elem, e); msg != "" {
				return "an element " + msg
			}
		}
	case map[string]any:
		for k, e := range v {
			f := s.Field(k)
			if f == nil {
				return "has a key " + k + " it should not have"
			}
			if msg := shapeMismatch(f, e); msg != "" {
				return k + " " + msg
			}
		}
	}
	return ""
}
