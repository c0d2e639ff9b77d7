package template

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestCondition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{`steps.fetch.outputs.n == "2"`, true},
		{`steps.fetch.status != "succeeded"`, false},
		{`{{ input.subject == "Hello" }}`, true},
		{`  {{input.subject startsWith "He"}}  `, true},
		{`int(input.count) > 2 && run.attempt == 2`, true},
		{`event.cpu > 90`, true},
		{`steps["my-step"].status == "skipped"`, true},
		{`(steps.fetch.outputs.nope ?? "") == ""`, true},
		{`failure.exit_code == 3`, true},
		{`"billing" in ["billing", "sales"]`, true},
		{`true`, true},
		{`steps.api.outputs.json.id == 42 && steps.api.outputs.json.name == "Ada"`, true},
		{`len(steps.api.outputs.rows) == 2 && steps.api.outputs.rows[0].email endsWith "x.test"`, true},
		{`steps.api.outputs.rows[1].n > 2`, true},
		{`"b" in steps.api.outputs.json.tags`, true},
		{`steps.api.outputs.json.none == nil`, true},
		{`fromJSON(steps.api.outputs.json).id == fromJSON(steps.api.outputs.body).id`, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			c, err := CompileCondition(tt.in)
			if err != nil {
				t.Fatalf("CompileCondition(%q): %v", tt.in, err)
			}
			got, err := c.Eval(testContext())
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Eval(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if c.String() != tt.in {
				t.Errorf("String() = %q, want %q", c.String(), tt.in)
			}
		})
	}
}

func TestConditionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		offset   int
		msg      string
	}{
		{"empty", "  ", 0, "empty condition"},
		{"empty braces", "{{ }}", 2, "empty condition"},
		{"not bool", `input.subject`, 0, "must be true or false, but this is a string"},
		{"unknown root", `stpes.a.status == "x"`, 0, `did you mean "steps"?`},
		{"unknown root in braces", `{{ stpes.a.status == "x" }}`, 3, `did you mean "steps"?`},
		{"syntax", `input.x ==`, 9, "unexpected token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := CompileCondition(tt.in)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("CompileCondition(%q) error = %v, want *Error", tt.in, err)
			}
			if te.Offset != tt.offset || !strings.Contains(te.Msg, tt.msg) {
				t.Errorf("CompileCondition(%q) = offset %d %q, want offset %d containing %q", tt.in, te.Offset, te.Msg, tt.offset, tt.msg)
			}
		})
	}
}

func TestConditionEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{`event.host`, `gave string web-1, not true or false`},
		{`steps.fetch.outputs.nope == ""`, "steps.fetch.outputs.nope is not set"},
	}
	for _, tt := range tests {
		c, err := CompileCondition(tt.in)
		if err != nil {
			t.Fatalf("CompileCondition(%q): %v", tt.in, err)
		}
		if _, err := c.Eval(testContext()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Eval(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestConditionRefs(t *testing.T) {
	t.Parallel()
	c, err := CompileCondition(`{{ steps.a.outputs.x == env.Y }}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Root: RootSteps, Path: []string{"a", "outputs", "x"}, Offset: 3},
		{Root: RootEnv, Path: []string{"Y"}, Offset: 24},
	}
	if got := withoutChains(c.Refs()); !reflect.DeepEqual(got, want) {
		t.Errorf("Refs() = %#v, want %#v", got, want)
	}
}

// TestCheckTypes checks expressions against the types of the steps'
// outputs: text is text, navigable values are anything.
func TestCheckTypes(t *testing.T) {
	t.Parallel()
	ts := NewTypes(map[string]*routine.Shape{
		"r": routine.StepOutputs("run"),
		"h": routine.StepOutputs("http"),
		"l": routine.StepOutputs("llm"),
	})
	for _, tt := range []struct {
		in, msg string
		offset  int
	}{
		{`steps.h.outputs.json.id > 3 && len(steps.h.outputs.headers) > 0`, "", 0},
		{`int(steps.r.outputs.n) > 3 && steps.h.outputs.status == "200"`, "", 0},
		{`steps.l.outputs.usage.input_tokens + 1 > steps.l.outputs.json.n`, "", 0},
		{`steps.h.outputs.json`, "", 0},
		{`steps[input.x].outputs.y > 3`, "", 0},
		{`steps.r.outputs.n > 3`, "mismatched types string and int", 18},
		{`{{ steps.h.outputs.status == 200 }}`, "mismatched types string and int", 26},
		{`steps.r.outputs.done`, "a condition must be true or false, but this is a string", 0},
	} {
		c, err := CompileCondition(tt.in)
		if err != nil {
			t.Fatalf("CompileCondition(%q): %v", tt.in, err)
		}
		err = c.CheckTypes(ts)
		var te *Error
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("CheckTypes(%q) = %v, want none", tt.in, err)
		case tt.msg != "" && (!errors.As(err, &te) || !strings.Contains(te.Msg, tt.msg) || te.Offset != tt.offset):
			t.Errorf("CheckTypes(%q) = %v, want offset %d containing %q", tt.in, err, tt.offset, tt.msg)
		}
	}
	tpl, err := Parse("a {{ steps.h.outputs.json.id }} b {{ steps.r.outputs.n * 2 }}")
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.CheckTypes(ts); err == nil || err.(*Error).Offset != 55 {
		t.Errorf("template CheckTypes = %v, want the second segment's error at its * (55)", err)
	}
}
