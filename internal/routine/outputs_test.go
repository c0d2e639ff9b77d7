package routine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want any
	}{
		{`7`, 7},
		{`-7`, -7},
		{`1.0`, 1},
		{`1e3`, 1000},
		{`0.25`, 0.25},
		{`9007199254740993`, 9007199254740993},
		{`12345678901234567890`, json.Number("12345678901234567890")},
		{`1e300`, 1e300},
		{` {"a": [1, 2.5, null, true, "x"], "b": {}} `, map[string]any{"a": []any{1, 2.5, nil, true, "x"}, "b": map[string]any{}}},
		{`"text"`, "text"},
		{`null`, nil},
	} {
		got, err := DecodeJSON([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeJSON(%s) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			continue
		}
		// What a value is written as reads back as the same value: the
		// store keeps outputs as JSON.
		text, err := JSONText(got)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := DecodeJSON([]byte(text)); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%s written as %s reads back as %#v, %v", tt.in, text, again, err)
		}
	}
	for in, msg := range map[string]string{
		``:          "the text is empty",
		`{"a":1} x`: "more after the value",
		`{"a":`:     "unexpected EOF",
		`1e999`:     "invalid JSON number",
	} {
		if _, err := DecodeJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("DecodeJSON(%q) error %v, want %q", in, err, msg)
		}
	}
}

func TestOutputsUnmarshal(t *testing.T) {
	t.Parallel()
	var o Outputs
	// As stored before outputs had structure: every value text.
	if err := json.Unmarshal([]byte(`{"status":"200","json":"{\"id\":7}"}`), &o); err != nil || !reflect.DeepEqual(o, Outputs{"status": "200", "json": `{"id":7}`}) {
		t.Errorf("old outputs %#v, %v", o, err)
	}
	if err := json.Unmarshal([]byte(`{"json":{"id":7,"r":0.5},"rows":[]}`), &o); err != nil || !reflect.DeepEqual(o, Outputs{"json": map[string]any{"id": 7, "r": 0.5}, "rows": []any{}}) {
		t.Errorf("structured outputs %#v, %v", o, err)
	}
	if err := json.Unmarshal([]byte(`null`), &o); err != nil || o != nil {
		t.Errorf("null outputs %#v, %v", o, err)
	}
	if err := json.Unmarshal([]byte(`["x"]`), &o); err == nil {
		t.Error("a list read as outputs")
	}
}

func TestOutputText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   any
		want string
	}{
		{"a <b> & c", "a <b> & c"},
		{nil, ""},
		{7, "7"},
		{0.5, "0.5"},
		{true, "true"},
		{json.Number("12345678901234567890"), "12345678901234567890"},
		{map[string]any{"b": "<x>", "a": []any{1, "\n"}}, `{"a":[1,"\n"],"b":"<x>"}`},
	} {
		if got := OutputText(tt.in); got != tt.want {
			t.Errorf("OutputText(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
