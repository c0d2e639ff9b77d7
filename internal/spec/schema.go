package spec

import (
	"encoding/json"
	"reflect"
	"sync"

	"github.com/invopop/jsonschema"

	"github.com/routines-dev/routines/internal/routine"
)

// SchemaID is the $id of the JSON Schema of routine.yaml.
const SchemaID = "https://routines.dev/routine.schema.json"

// Patterns of the values the types of routine decode from text.
const (
	durationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|[0-9]+(\.[0-9]+)?d([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*)$`
	sizePattern     = `^[0-9]+ *([kKmMgG]([iI]?[bB])?|[bB])?$`
)

// Schema returns the JSON Schema (draft 2020-12) of routine.yaml, for
// editors and `routines schema`. It is generated from the types of package
// routine, which the decoder reads too, so the two accept the same keys.
func Schema() []byte { return schema() }

var schema = sync.OnceValue(func() []byte {
	r := &jsonschema.Reflector{Mapper: schemaMapper}
	s := r.Reflect(&routine.Routine{})
	s.ID = SchemaID
	s.Title = "routine.yaml"
	s.Description = "A routine of Routines: its triggers, its steps, and the env and secrets they may use."

	// A secret is a bare NAME or a mapping {name, from}.
	ref := s.Definitions["SecretRef"]
	s.Definitions["SecretRef"] = &jsonschema.Schema{OneOf: []*jsonschema.Schema{
		{Type: "string", Pattern: secretPattern.String(), Description: "The name of a secret."},
		ref,
	}}
	// Env and input names, which the decoder reads as map keys.
	for _, def := range []string{"Routine", "Action", "Step"} {
		if p, ok := s.Definitions[def].Properties.Get("env"); ok {
			p.PropertyNames = &jsonschema.Schema{Pattern: envPattern.String()}
		}
	}
	if p, ok := s.Definitions["Routine"].Properties.Get("inputs"); ok {
		p.PropertyNames = &jsonschema.Schema{Pattern: inputPattern.String()}
	}

	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic("spec: marshal schema: " + err.Error()) // the schema is built from static types
	}
	return append(b, '\n')
})

// schemaMapper describes the types that decode from text.
func schemaMapper(t reflect.Type) *jsonschema.Schema {
	switch t {
	case durationType:
		return &jsonschema.Schema{Type: "string", Pattern: durationPattern, Examples: []any{"500ms", "30s", "10m", "1h30m", "2d"}}
	case byteSizeType:
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "string", Pattern: sizePattern, Examples: []any{"512MiB", "2G"}},
			{Type: "integer", Minimum: "0"},
		}}
	}
	return nil
}
