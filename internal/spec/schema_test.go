package spec

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestSchemaGolden(t *testing.T) {
	t.Parallel()
	const golden = "testdata/schema.golden.json"
	got := Schema()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("Schema() differs from %s (go test -update rewrites it)", golden)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	t.Parallel()
	var s struct {
		Schema string         `json:"$schema"`
		ID     string         `json:"$id"`
		Ref    string         `json:"$ref"`
		Defs   map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.ID != SchemaID || s.Ref != "#/$defs/Routine" {
		t.Errorf("$schema, $id, $ref = %q, %q, %q", s.Schema, s.ID, s.Ref)
	}
}

// TestSchemaKeysMatchDecoder checks that, for every struct type a routine
// file holds, the schema allows exactly the keys the decoder accepts, so
// neither can drift from the other.
func TestSchemaKeysMatchDecoder(t *testing.T) {
	t.Parallel()
	var s struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	for _, typ := range structTypes(reflect.TypeFor[routine.Routine]()) {
		raw, ok := s.Defs[typ.Name()]
		if !ok {
			t.Errorf("the schema has no definition of %s", typ.Name())
			continue
		}
		var def struct {
			Properties           map[string]any `json:"properties"`
			AdditionalProperties *bool          `json:"additionalProperties"`
			OneOf                []json.RawMessage
		}
		if err := json.Unmarshal(raw, &def); err != nil {
			t.Fatal(err)
		}
		if typ == secretRefType { // a string or the mapping
			if err := json.Unmarshal(def.OneOf[1], &def); err != nil {
				t.Fatal(err)
			}
		}
		var keys []string
		for k := range def.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		decoded := slices.Sorted(slices.Values(fieldsOf(typ).keys))
		if !slices.Equal(keys, decoded) {
			t.Errorf("%s: the schema allows %v, the decoder %v", typ.Name(), keys, decoded)
		}
		if def.AdditionalProperties == nil || *def.AdditionalProperties {
			t.Errorf("%s: the schema allows additional properties", typ.Name())
		}
	}
}

// structTypes returns the struct types reachable from t, but those that
// decode from text.
func structTypes(t reflect.Type) []reflect.Type {
	var out []reflect.Type
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || slices.Contains(out, t) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return
		}
		out = append(out, t)
		for f := range t.Fields() {
			if f.IsExported() && f.Tag.Get("yaml") != "-" {
				walk(f.Type)
			}
		}
	}
	walk(t)
	return out
}
