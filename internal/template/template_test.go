package template

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/routines-dev/routines/internal/routine"
)

// testContext is a context with a value behind every root.
func testContext() *Context {
	return &Context{
		Input: map[string]string{"subject": "Hello", "count": "3"},
		Event: map[string]any{
			"host":  "web-1",
			"cpu":   91.5,
			"load":  float64(2),
			"user":  map[string]any{"name": "ada"},
			"items": []any{"a", "b"},
			"none":  nil,
		},
		Env: map[string]string{"CRM_URL": "https://crm.example.com", "REGION": "eu"},
		Steps: map[string]StepContext{
			"fetch":   {Outputs: routine.Outputs{"url": "https://x.test/a", "n": "2"}, Status: "succeeded"},
			"my-step": {Outputs: routine.Outputs{"x": "dash"}, Status: "skipped"},
			"api": {Outputs: routine.Outputs{
				"body":    `{"id":42}`,
				"json":    map[string]any{"id": 42, "name": "Ada", "tags": []any{"a", "b"}, "owner": map[string]any{"email": "ada@x.test"}, "none": nil},
				"headers": map[string]any{"content-type": "application/json"},
				"rows":    []any{map[string]any{"email": "a@x.test", "n": 1}, map[string]any{"email": "b@x.test", "n": 2.5}},
				"empty":   nil,
			}, Status: "succeeded"},
		},
		Run:     RunInfo{ID: "01JRUN", Attempt: 2},
		Routine: RoutineInfo{Name: "triage", Revision: "abc123"},
		Failure: &Failure{Code: "step_failed", Message: "exit status 3", Step: "fetch", ExitCode: 3},
		Secrets: map[string]string{"TOKEN": "s3cret", "REGION": "secret-wins"},
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"literal", "echo hello", "echo hello"},
		{"empty", "", ""},
		{"lone braces", "a } b }} c {", "a } b }} c {"},
		{"input", "Subject: {{ input.subject }}", "Subject: Hello"},
		{"no spaces", "{{input.subject}}", "Hello"},
		{"env", "{{ env.CRM_URL }}/tickets", "https://crm.example.com/tickets"},
		{"step output", "{{ steps.fetch.outputs.url }}", "https://x.test/a"},
		{"step status", "{{ steps.fetch.status }}", "succeeded"},
		{"dashed step id", `{{ steps["my-step"].outputs.x }}`, "dash"},
		{"run", "{{ run.id }}/{{ run.attempt }}", "01JRUN/2"},
		{"routine", "{{ routine.name }}@{{ routine.revision }}", "triage@abc123"},
		{"failure", "{{ failure.message }} in {{ failure.step }} ({{ failure.exit_code }})", "exit status 3 in fetch (3)"},
		{"event", "{{ event.host }} {{ event.user.name }}", "web-1 ada"},
		{"float", "{{ event.cpu }}", "91.5"},
		{"integral float", "{{ event.load }}", "2"},
		{"arithmetic", "{{ 1 + 2 }} {{ 7 / 2 }} {{ 2.0 * 3 }}", "3 3.5 6"},
		{"bool", "{{ input.subject == 'Hello' }}", "true"},
		{"nil", "[{{ event.none }}]", "[]"},
		{"list as json", "{{ event.items }}", `["a","b"]`},
		{"map as json", "{{ event.user }}", `{"name":"ada"}`},
		{"json keeps html", `{{ {"a": "<b>"} }}`, `{"a":"<b>"}`},
		{"map literal braces", `{{ {"a": 1}.a }}`, "1"},
		{"closing braces in string", `{{ "}}" }}`, "}}"},
		{"secret", "Bearer {{TOKEN}}", "Bearer s3cret"},
		{"secret wins over env", "{{REGION}}", "secret-wins"},
		{"named env", "{{ CRM_URL }}", "https://crm.example.com"},
		{"builtin", "{{ upper(input.subject) }}", "HELLO"},
		{"let", "{{ let s = input.subject; s + s }}", "HelloHello"},
		{"predicate", "{{ join(map(event.items, upper(#)), ',') }}", "A,B"},
		{"default for missing output", "{{ steps.fetch.outputs.nope ?? 'none' }}", "none"},
		{"default for missing step", "{{ steps.gone.outputs.url ?? 'none' }}", "none"},
		{"default for missing input", "{{ input.nope ?? 'd' }}", "d"},
		{"default for missing env", "{{ env.NOPE ?? 'd' }}", "d"},
		{"default for missing event key", "{{ event.user.age ?? 0 }}", "0"},
		{"default not used", "{{ input.subject ?? 'd' }}", "Hello"},
		{"default of struct field", "{{ run.id ?? 'd' }}", "01JRUN"},
		{"optional chain", "[{{ event?.nope?.deeper }}]", "[]"},
		{"ternary", "{{ steps.fetch.status == 'succeeded' ? 'ok' : 'ko' }}", "ok"},
		{"dynamic key", "{{ steps[input.subject == 'Hello' ? 'fetch' : 'x'].status }}", "succeeded"},
		{"unicode around", "é {{ input.subject }} ü", "é Hello ü"},
		{"multi line", "echo {{ input.subject }}\necho {{ env.REGION }}\n", "echo Hello\necho eu\n"},
		{"structured output field", "{{ steps.api.outputs.json.id }}", "42"},
		{"structured output deep", "{{ steps.api.outputs.json.owner.email }}", "ada@x.test"},
		{"structured output as json", "{{ steps.api.outputs.json }}", `{"id":42,"name":"Ada","none":null,"owner":{"email":"ada@x.test"},"tags":["a","b"]}`},
		{"structured null", "[{{ steps.api.outputs.json.none }}] [{{ steps.api.outputs.empty }}]", "[] []"},
		{"row of a list", "{{ steps.api.outputs.rows[0].email }}", "a@x.test"},
		{"last row", "{{ steps.api.outputs.rows[-1].n * 2 }}", "5"},
		{"len of a list", "{{ len(steps.api.outputs.rows) }}", "2"},
		{"header", `{{ steps.api.outputs.headers["content-type"] }}`, "application/json"},
		{"fromJSON of a structured output", "{{ fromJSON(steps.api.outputs.json).id }}", "42"},
		{"fromJSON of text", "{{ fromJSON(steps.api.outputs.body).id + 1 }}", "43"},
		{"fromJSON keeps big ids", `{{ fromJSON('{"id": 9007199254740993}').id }}`, "9007199254740993"},
		{"default for a missing key", "{{ steps.api.outputs.json.nope ?? 'none' }}", "none"},
		{"optional chain into output", "[{{ steps.api.outputs.json?.nope }}]", "[]"},
		{"predicate over rows", "{{ join(map(steps.api.outputs.rows, .email), ',') }}", "a@x.test,b@x.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			got, err := tpl.Render(testContext())
			if err != nil {
				t.Fatalf("Render(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Render(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tpl.String() != tt.in {
				t.Errorf("String() = %q, want %q", tpl.String(), tt.in)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		offset   int
		msg      string
	}{
		{"unknown root", "x {{ stpes.fetch.outputs.url }}", 5, `unknown name "stpes" in expression; did you mean "steps"?`},
		{"unknown root far", "{{ foo }}", 3, `unknown name "foo" in expression`},
		{"upper in expression", "{{ TOKEN + 'x' }}", 3, `unknown name "TOKEN": write {{TOKEN}} on its own, or env.TOKEN`},
		{"$env", "{{ $env.steps }}", 3, "$env is not available"},
		{"unknown step field", "{{ steps.fetch.output.url }}", 15, `unknown field "output" of steps.fetch; did you mean "outputs"?`},
		{"unknown run field", "{{ run.idd }}", 7, `unknown field "idd" of run; did you mean "id"?`},
		{"unknown failure field", "{{ failure.mesage }}", 11, `unknown field "mesage" of failure; did you mean "message"?`},
		{"unclosed", "a {{ input.x", 2, "{{ is not closed by }}"},
		{"unclosed quote", `{{ "abc }}`, 0, "{{ is not closed by }}"},
		{"empty", "a {{ }} b", 2, "empty {{ }}"},
		{"syntax", "{{ input.x + }}", 11, "unexpected token"},
		{"type", "{{ input.x + 1 }}", 11, "mismatched types"},
		{"unknown function", "{{ nope(input.x) }}", 3, `unknown name nope`},
		{"second segment", "{{ input.x }} and {{ bad }}", 21, `unknown name "bad"`},
		{"unicode offset", "éé {{ stpes }}", 8, `did you mean "steps"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.in)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Parse(%q) error = %v, want *Error", tt.in, err)
			}
			if te.Offset != tt.offset || !strings.Contains(te.Msg, tt.msg) {
				t.Errorf("Parse(%q) = offset %d %q, want offset %d containing %q", tt.in, te.Offset, te.Msg, tt.offset, tt.msg)
			}
			if !strings.Contains(err.Error(), strconv.Quote(te.Expr)) {
				t.Errorf("Error() = %q does not name the expression %q", err.Error(), te.Expr)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		change         func(c *Context)
	}{
		{"missing output", "{{ steps.fetch.outputs.nope }}", "steps.fetch.outputs.nope is not set", nil},
		{"missing step", "{{ steps.gone.outputs.url }}", "steps.gone is not set", nil},
		{"missing input", "{{ input.nope }}", "input.nope is not set", nil},
		{"missing env", "{{ env.NOPE }}", "env.NOPE is not set", nil},
		{"missing event key", "{{ event.user.age }}", "event.user.age is not set", nil},
		{"no event", "{{ event.host }}", "event.host is not set", func(c *Context) { c.Event = nil }},
		{"no failure", "{{ failure.message }}", "failure is not set", func(c *Context) { c.Failure = nil }},
		{"missing named", "{{NOPE}}", "NOPE is neither a resolved secret nor an env entry", nil},
		{"runtime error", "{{ event.items[5] }}", "index out of range", nil},
		{"not text", "{{ event.f }}", "cannot write", func(c *Context) { c.Event = map[string]any{"f": func() {}} }},
		{"missing key of an output", "{{ steps.api.outputs.json.owner.nope }}", "steps.api.outputs.json.owner.nope is not set", nil},
		{"key of null", "{{ steps.api.outputs.empty.id }}", "steps.api.outputs.empty.id is not set", nil},
		{"key of text", "{{ steps.api.outputs.body.id }}", `steps.api.outputs.body is text, so it has no field "id": if it holds JSON, write fromJSON(steps.api.outputs.body).id`, nil},
		{"key of text in an expression", "{{ steps.api.outputs.body.id + 1 }}", "write fromJSON(steps.api.outputs.body).id", nil},
		{"key of a list", "{{ steps.api.outputs.rows.email }}", `steps.api.outputs.rows is a list, so it has no field "email": pick an element first, as in steps.api.outputs.rows[0].email`, nil},
		{"key of a number", "{{ steps.api.outputs.json.id.x }}", `steps.api.outputs.json.id is a number, so it has no field "x"`, nil},
		{"fromJSON of bad text", "{{ fromJSON(steps.fetch.outputs.url) }}", "invalid character", nil},
		{"fromJSON of empty text", "{{ fromJSON('') }}", "invalid JSON: the text is empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			c := testContext()
			if tt.change != nil {
				tt.change(c)
			}
			_, err = tpl.Render(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestRenderErrorNamesExpression(t *testing.T) {
	t.Parallel()
	tpl, err := Parse("x {{ steps.fetch.outputs.nope }} y")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpl.Render(testContext())
	if want := "{{ steps.fetch.outputs.nope }}: steps.fetch.outputs.nope is not set"; err == nil || err.Error() != want {
		t.Errorf("Render error = %v, want %q", err, want)
	}
	c, err := CompileCondition(`input.nope == "x"`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Eval(testContext())
	if want := `condition "input.nope == \"x\"": input.nope is not set`; err == nil || err.Error() != want {
		t.Errorf("Eval error = %v, want %q", err, want)
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []Ref
	}{
		{"literal", "echo hi", nil},
		{"named", "a {{TOKEN}}", []Ref{{Root: RootNamed, Path: []string{"TOKEN"}, Offset: 4}}},
		{"output", "{{ steps.fetch.outputs.url }}", []Ref{{Root: RootSteps, Path: []string{"fetch", "outputs", "url"}, Offset: 3}}},
		{"bracket id", `{{ steps["my-step"].outputs.x }}`, []Ref{{Root: RootSteps, Path: []string{"my-step", "outputs", "x"}, Offset: 3}}},
		{"root only", "{{ input }}", []Ref{{Root: RootInput, Offset: 3}}},
		{"dynamic key", "{{ steps[input.k].outputs.x }}", []Ref{
			{Root: RootSteps, Offset: 3},
			{Root: RootInput, Path: []string{"k"}, Offset: 9},
		}},
		{"optional", "{{ env.A ?? env.B }} {{ event?.x }}", []Ref{
			{Root: RootEnv, Path: []string{"A"}, Offset: 3, Optional: true},
			{Root: RootEnv, Path: []string{"B"}, Offset: 12},
			{Root: RootEvent, Path: []string{"x"}, Offset: 24, Optional: true},
		}},
		{"let shadows nothing", "{{ let x = input.a; x }}", []Ref{{Root: RootInput, Path: []string{"a"}, Offset: 11}}},
		{"several", "{{ run.id }}-{{ routine.name }}-{{ failure.code }}", []Ref{
			{Root: RootRun, Path: []string{"id"}, Offset: 3},
			{Root: RootRoutine, Path: []string{"name"}, Offset: 16},
			{Root: RootFailure, Path: []string{"code"}, Offset: 35},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := withoutChains(tpl.Refs()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Refs(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// withoutChains returns refs without their Chain, which TestRefChain tests.
func withoutChains(refs []Ref) []Ref {
	var out []Ref
	for _, r := range refs {
		r.Chain = nil
		out = append(out, r)
	}
	return out
}

// TestRefChain checks the selectors a reference records, each located at
// its key within the parsed string, and how they are written back.
func TestRefChain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string   // the reference written back from its chain
		keys []string // the source text at each selector's offset
	}{
		{"{{ steps.q.outputs.rows[0].email }}", "steps.q.outputs.rows[0].email", []string{"q", "outputs", "rows", "0", "email"}},
		{`x {{ steps.h.outputs.headers["Content-Type"] }}`, `steps.h.outputs.headers["Content-Type"]`, []string{"h", "outputs", "headers", `"Content-Type"`}},
		{`{{ steps["my-step"].outputs.x[input.i] }}`, `steps["my-step"].outputs.x[…]`, []string{`"my-step"`, "outputs", "x", "i"}},
		{"{{ len(steps.q.outputs.rows) > 0 ? 1 : 2 }}", "steps.q.outputs.rows", []string{"q", "outputs", "rows"}},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		r := tpl.Refs()[0]
		if got := r.Prefix(len(r.Chain)); got != tt.want {
			t.Errorf("%s: chain %q, want %q", tt.in, got, tt.want)
		}
		if len(r.Chain) != len(tt.keys) {
			t.Errorf("%s: %d selectors, want %d", tt.in, len(r.Chain), len(tt.keys))
			continue
		}
		var keys []string
		for i, s := range r.Chain {
			at := r.Offset + s.Offset
			keys = append(keys, tt.in[at:at+len(tt.keys[i])])
		}
		if !reflect.DeepEqual(keys, tt.keys) {
			t.Errorf("%s: keys at the selectors' offsets %q, want %q", tt.in, keys, tt.keys)
		}
	}
}

func TestRefString(t *testing.T) {
	t.Parallel()
	for ref, want := range map[*Ref]string{
		{Root: RootNamed, Path: []string{"TOKEN"}}:             "{{TOKEN}}",
		{Root: RootSteps, Path: []string{"a", "outputs", "b"}}: "steps.a.outputs.b",
		{Root: RootInput}: "input",
	} {
		if got := ref.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", *ref, got, want)
		}
	}
}

func TestStringify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""},
		{"s", "s"},
		{true, "true"},
		{42, "42"},
		{int64(-7), "-7"},
		{uint64(7), "7"},
		{3.0, "3"},
		{0.25, "0.25"},
		{1e22, "1e+22"},
		{float32(1.5), "1.5"},
		{[]byte("raw"), "raw"},
		{[]any{1, "a"}, `[1,"a"]`},
		{map[string]any{"b": 1, "a": true}, `{"a":true,"b":1}`},
	}
	for _, tt := range tests {
		got, err := stringify(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("stringify(%#v) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFailureOf(t *testing.T) {
	t.Parallel()
	if FailureOf(nil) != nil {
		t.Error("FailureOf(nil) != nil")
	}
	code := 3
	f := FailureOf(&routine.ErrorPayload{Code: "step_failed", Message: "boom", Step: "x", ExitCode: &code})
	if f.Code != "step_failed" || f.Message != "boom" || f.Step != "x" || f.ExitCode != 3 {
		t.Errorf("FailureOf = %+v", f)
	}
}

func TestLiteralRenderDoesNotAllocate(t *testing.T) {
	tpl, err := Parse("echo hello world")
	if err != nil {
		t.Fatal(err)
	}
	c := testContext()
	if n := testing.AllocsPerRun(100, func() { _, _ = tpl.Render(c) }); n != 0 {
		t.Errorf("Render of a literal allocates %v times", n)
	}
}

// TestStaticPathsMatchExpr checks that the plain paths evaluated without
// the virtual machine give what expr-lang gives.
func TestStaticPathsMatchExpr(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"input.subject", "env.CRM_URL", "steps.fetch.outputs.url", "steps.fetch.status",
		`steps["my-step"].outputs.x`, "run.id", "run.attempt", "routine.name", "routine.revision",
		"event.host", "event.cpu", "event.user", "event.user.name", "event.items", "event.none",
		"steps.api.outputs.json", "steps.api.outputs.json.id", "steps.api.outputs.json.owner.email", "steps.api.outputs.rows",
		`steps.api.outputs.headers["content-type"]`, "steps.api.outputs.empty",
	} {
		e, err := compile(src, false)
		if err != nil {
			t.Fatalf("compile(%q): %v", src, err)
		}
		if e.program != nil {
			t.Errorf("%q is not compiled as a static path", src)
			continue
		}
		program, err2 := expr.Compile(src, expr.Env(Context{}))
		if err2 != nil {
			t.Fatal(err2)
		}
		c := testContext()
		want, err2 := expr.Run(program, c)
		if err2 != nil {
			t.Fatal(err2)
		}
		got, err2 := e.eval(c)
		if err2 != nil {
			t.Fatal(err2)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, expr-lang gives %#v", src, got, want)
		}
	}
}
