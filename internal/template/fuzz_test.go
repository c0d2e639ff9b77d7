package template

import (
	"strings"
	"testing"
)

// FuzzParseRender feeds arbitrary strings to Parse, Render and
// CompileCondition: none may panic, and every offset they report must lie
// within the input.
func FuzzParseRender(f *testing.F) {
	for _, s := range []string{
		"plain text",
		"{{ input.subject }}",
		"Bearer {{TOKEN}}",
		`{{ steps["my-step"].outputs.x ?? "none" }}`,
		"{{ steps.fetch.outputs.url }}/{{ run.id }}",
		`{{ {"a": "}}"}.a }}`,
		"{{ let x = event.items; map(x, upper(#)) }}",
		"{{ failure.message }} ({{ failure.exit_code }})",
		"{{ stpes.x }}",
		"{{ 1 + }}",
		"{{",
		"}}{{}}",
		`steps.fetch.status == "succeeded"`,
		"é {{ event?.user?.name }} ü",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := testContext()
		if tpl, err := Parse(s); err != nil {
			checkError(t, s, err)
		} else {
			for _, r := range tpl.Refs() {
				if r.Offset < 0 || r.Offset >= len(s) {
					t.Fatalf("Parse(%q): ref %v at offset %d out of range", s, r, r.Offset)
				}
			}
			_, _ = tpl.Render(c)
			if tpl.IsLiteral() && strings.Contains(s, "{{") {
				t.Fatalf("Parse(%q) is a literal", s)
			}
		}
		if cond, err := CompileCondition(s); err != nil {
			checkError(t, s, err)
		} else {
			_, _ = cond.Eval(c)
		}
	})
}

func checkError(t *testing.T, s string, err error) {
	t.Helper()
	te, ok := err.(*Error)
	if !ok {
		t.Fatalf("%q: error %T %v is not an *Error", s, err, err)
	}
	if te.Offset < 0 || te.Offset > len(s) {
		t.Fatalf("%q: error offset %d out of range: %v", s, te.Offset, err)
	}
}
