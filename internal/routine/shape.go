package routine

import (
	"encoding/json"
	"maps"
	"slices"
)

// ShapeType is what kind of value an output is, as far as it is known
// before a run.
type ShapeType uint8

// The shape types. ShapeAny, the zero value, is a value whose structure
// only the run knows (the json an API answers).
const (
	ShapeAny ShapeType = iota
	ShapeString
	ShapeNumber
	ShapeBool
	ShapeList   // its elements are Elem
	ShapeObject // its keys are Fields, and Other for any other key
)

// String names the type in a message: "text", "a number", "a list".
func (t ShapeType) String() string {
	return [...]string{"a value", "text", "a number", "true or false", "a list", "an object"}[t]
}

// ShapeTypeOf returns the type of an output value.
func ShapeTypeOf(v any) ShapeType {
	switch v.(type) {
	case string:
		return ShapeString
	case int, int64, float64, json.Number:
		return ShapeNumber
	case bool:
		return ShapeBool
	case []any:
		return ShapeList
	case map[string]any, map[string]string:
		return ShapeObject
	}
	return ShapeAny
}

// Shape is what validate knows of an output before a run, so that a path
// into it (steps.q.outputs.rows[0].email) is checked as far as it can be.
type Shape struct {
	Type ShapeType
	// Elem is the shape of a list's elements.
	Elem *Shape
	// Fields are the keys an object always has.
	Fields map[string]*Shape
	// Other is the shape of the values of an object's other keys; nil when
	// it has no others.
	Other *Shape
	// LowerKeys says an object's keys are lower case (http headers).
	LowerKeys bool
}

// FieldNames returns the names of the known fields of an object, sorted.
func (s *Shape) FieldNames() []string {
	return slices.Sorted(maps.Keys(s.Fields))
}

// Field returns the shape of key in an object, or nil when the object has
// no such key.
func (s *Shape) Field(key string) *Shape {
	if f, ok := s.Fields[key]; ok {
		return f
	}
	return s.Other
}

var (
	anyShape    = &Shape{}
	textShape   = &Shape{Type: ShapeString}
	numberShape = &Shape{Type: ShapeNumber}
	boolShape   = &Shape{Type: ShapeBool}
)

func listOf(elem *Shape) *Shape { return &Shape{Type: ShapeList, Elem: elem} }

// object returns an object with the text fields names and the fields
// more.
func object(more map[string]*Shape, names ...string) *Shape {
	s := &Shape{Type: ShapeObject, Fields: make(map[string]*Shape, len(names)+len(more))}
	for _, n := range names {
		s.Fields[n] = textShape
	}
	maps.Copy(s.Fields, more)
	return s
}

// llmOutputs are the outputs of llm steps, which agent steps have too.
func llmOutputs(more map[string]*Shape, names ...string) *Shape {
	s := object(map[string]*Shape{
		"json":  anyShape,
		"usage": object(map[string]*Shape{"input_tokens": numberShape, "output_tokens": numberShape}),
	}, "text", "model", "stop_reason", "input_tokens", "output_tokens")
	maps.Copy(s.Fields, object(more, names...).Fields)
	return s
}

// stepOutputs are the outputs of each step kind. docs/routine.md shows
// them as a table; a test of each kind checks that it produces these.
var stepOutputs = map[string]*Shape{
	// key=value lines: text, by any name.
	"run": {Type: ShapeObject, Other: textShape},
	"http": object(map[string]*Shape{
		"headers": {Type: ShapeObject, Other: textShape, LowerKeys: true},
		"json":    anyShape,
	}, "status", "body", "body_encoding", "body_truncated"),
	"sql": object(map[string]*Shape{
		"rows": listOf(&Shape{Type: ShapeObject, Other: anyShape}),
	}, "count", "affected"),
	"slack":    object(nil, "ts", "channel"),
	"email":    object(map[string]*Shape{"accepted": listOf(textShape)}, "message_id"),
	"emit":     object(map[string]*Shape{"run_ids": listOf(textShape)}, "deduplicated"),
	"llm":      llmOutputs(nil),
	"agent":    llmOutputs(map[string]*Shape{"tool_calls": listOf(object(map[string]*Shape{"input": anyShape, "ok": boolShape, "ms": numberShape}, "tool"))}, "turns"),
	"classify": object(map[string]*Shape{"scores": {Type: ShapeObject, Other: numberShape}}, "label", "best_label", "confidence"),
	"state":    object(nil, "value", "found"),
	// The sub-run's outputs, whatever the sub-routine produced.
	"routine": {Type: ShapeObject, Fields: object(nil, "run_id", "state").Fields, Other: anyShape},
}

// StepOutputs returns the shape of the outputs of a step of kind: an
// object whose fields are the outputs every step of the kind has. An
// unknown kind has outputs of any shape.
func StepOutputs(kind string) *Shape {
	if s, ok := stepOutputs[kind]; ok {
		return s
	}
	return &Shape{Type: ShapeObject, Other: anyShape}
}

// stateDeleteOutputs are the outputs of a state step that deletes: only
// whether the key was there.
var stateDeleteOutputs = object(nil, "found")

// OutputsOf returns the shape of the outputs of step — those of its kind,
// narrowed where its action says more (a state delete has no value) —
// and what has them, for messages ("http steps").
func OutputsOf(step *Step) (*Shape, string) {
	if step.State != nil && step.State.Delete != "" {
		return stateDeleteOutputs, "state steps that delete"
	}
	return StepOutputs(step.Kind()), step.Kind() + " steps"
}
