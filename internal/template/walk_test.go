package template_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/template"
)

type inner struct {
	Text  string            `yaml:"text"`
	Items []string          `yaml:"items,omitempty"`
	Data  map[string]string `yaml:"data,omitempty"`
	Raw   string            `yaml:"raw" template:"-"`
	Count int               `yaml:"count"`
}

type outer struct {
	Name   string `yaml:"name"`
	Inline `yaml:",inline"`
	Inner  *inner `yaml:"inner,omitempty"`
	Body   any    `yaml:"body,omitempty"`
	Absent *inner `yaml:"absent,omitempty"`
}

type Inline struct {
	Shared string `yaml:"shared"`
}

func TestMapStrings(t *testing.T) {
	in := &outer{
		Name:   "n",
		Inline: Inline{Shared: "s"},
		Inner:  &inner{Text: "t", Items: []string{"a", "b"}, Data: map[string]string{"k": "v"}, Raw: "raw", Count: 3},
		Body:   map[string]any{"list": []any{"x", 1, map[string]any{"deep": "d"}}, "num": 2.5},
	}
	var paths []string
	out, err := template.MapStrings(in, func(path, s string) (string, error) {
		paths = append(paths, path)
		return strings.ToUpper(s), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	want := []string{"body.list[0]", "body.list[2].deep", "inner.data.k", "inner.items[0]", "inner.items[1]", "inner.text", "name", "shared"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	if out.Name != "N" || out.Shared != "S" || out.Inner.Text != "T" || out.Inner.Items[1] != "B" || out.Inner.Data["k"] != "V" ||
		out.Inner.Raw != "raw" || out.Inner.Count != 3 || out.Absent != nil {
		t.Errorf("copy %+v %+v", out, out.Inner)
	}
	body := out.Body.(map[string]any)
	if body["list"].([]any)[0] != "X" || body["list"].([]any)[1] != 1 || body["list"].([]any)[2].(map[string]any)["deep"] != "D" || body["num"] != 2.5 {
		t.Errorf("body %v", body)
	}
	// The original is untouched: the copy is deep.
	if in.Name != "n" || in.Inner.Text != "t" || in.Inner.Items[1] != "b" || in.Inner.Data["k"] != "v" ||
		in.Body.(map[string]any)["list"].([]any)[0] != "x" || !maps.Equal(in.Inner.Data, map[string]string{"k": "v"}) {
		t.Errorf("the original changed: %+v %+v", in, in.Inner)
	}
	// An error stops the walk and names nothing else.
	boom := errors.New("boom")
	if _, err := template.MapStrings(in, func(path, s string) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
}
