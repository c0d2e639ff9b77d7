package spec

import (
	"fmt"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
	"github.com/routines-dev/routines/internal/template"
)

// outputPath checks a path into the outputs of a step as far as the
// step's kind says what they are (routine.StepOutputs): an output the
// kind has, keys of an object whose keys are known, a list indexed, text
// and numbers not selected into. It returns what is wrong and the offset
// of the selector at fault in the parsed string, or "".
func (v *validator) outputPath(ref template.Ref) (string, int) {
	c := ref.Chain
	if len(c) < 3 || c[0].Index || c[1].Index || c[1].Key != "outputs" || c[2].Index {
		return "", 0
	}
	step := v.stepNamed(c[0].Key)
	if step == nil {
		return "", 0
	}
	kind := step.Kind()
	outputs, owner := routine.OutputsOf(step)
	shape := outputs.Field(c[2].Key)
	if shape == nil {
		names := outputs.FieldNames()
		return fmt.Sprintf("%s has no output %q: the outputs of %s are %s%s",
			ref.Prefix(1), c[2].Key, owner, list(names), suggest.DidYouMean(c[2].Key, names)), ref.Offset + c[2].Offset
	}
	for i := 3; i < len(c); i++ {
		sel := c[i]
		switch shape.Type {
		case routine.ShapeAny:
			return "", 0
		case routine.ShapeObject:
			if sel.Index {
				shape = shape.Other
			} else if shape.LowerKeys && sel.Key != strings.ToLower(sel.Key) {
				lower := ref.Prefix(i) + template.Selector{Key: strings.ToLower(sel.Key)}.String()
				return fmt.Sprintf("the names in %s are lower case: write %s", ref.Prefix(i), lower), ref.Offset + sel.Offset
			} else if next := shape.Field(sel.Key); next != nil {
				shape = next
			} else {
				names := shape.FieldNames()
				return fmt.Sprintf("%s has no field %q: its fields are %s%s",
					ref.Prefix(i), sel.Key, list(names), suggest.DidYouMean(sel.Key, names)), ref.Offset + sel.Offset
			}
			if shape == nil {
				return "", 0 // a computed key of an object whose keys are known
			}
		case routine.ShapeList:
			if msg := ref.CannotSelect(i, shape.Type); msg != "" {
				return msg, ref.Offset + sel.Offset
			}
			shape = shape.Elem
		default:
			return ref.CannotSelect(i, shape.Type) + textHint(kind, c[2].Key, ref), ref.Offset + sel.Offset
		}
	}
	return "", 0
}

// textHint says more of an output that is text where a path goes into it:
// how a run step hands on structure, where an http step's answer is
// decoded.
func textHint(kind, output string, ref template.Ref) string {
	switch {
	case kind == "run":
		return " (the outputs of a run step are text: to hand on structured data, write JSON into an output and read it with fromJSON)"
	case kind == "http" && output == "body":
		return "; " + ref.Prefix(2) + ".json holds the answer already decoded when it is JSON"
	case (kind == "llm" || kind == "agent") && output == "text":
		return "; with json_schema, " + ref.Prefix(2) + ".json holds the answer already decoded"
	}
	return ""
}

// outputTypes returns the types of the outputs of the routine's steps.
func (v *validator) outputTypes() *template.Types {
	if v.types == nil {
		shapes := map[string]*routine.Shape{}
		for _, l := range [][]routine.Step{v.r.Steps, v.r.OnFailure} {
			for i := range l {
				shapes[l[i].ID] = routine.StepOutputs(l[i].Kind())
			}
		}
		v.types = template.NewTypes(shapes)
	}
	return v.types
}

// stepNamed returns the step id of the main steps or on_failure, or nil.
func (v *validator) stepNamed(id string) *routine.Step {
	for _, l := range [][]routine.Step{v.r.Steps, v.r.OnFailure} {
		for i := range l {
			if l[i].ID == id {
				return &l[i]
			}
		}
	}
	return nil
}

// list writes names as "a, b and c".
func list(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
