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

// FuzzRenderRunLine renders arbitrary values into run lines that nest the
// segment in quotes, substitutions and here-documents (chosen by shape),
// runs each with a real shell and checks that it prints exactly the value:
// whatever the value holds, it is never read as code. shape is also parsed
// as a run line of its own, which must not panic.
func FuzzRenderRunLine(f *testing.F) {
	for _, seed := range [][2]string{
		{"", `"; echo INJECTED $(id); "`},
		{"\x00", "`id` $(id)"},
		{"\x01\x00", `'; id; echo '`},
		{"\x02\x03", "a\nEOF\nid\nEOF\n"},
		{"\x04", `$'\x41' \" \\`},
		{"\x05\x01", "trailing newlines\n\n"},
		{"\x06", "NUL \x00 byte"},
		{"\x00\x03\x02", "* ? [a] ~ {a,b} -n"},
		{"echo {{ input.v }} <<'E'\n{{ input.v }}\nE", "x"},
		{"bash -c \"{{ input.v }}\"; $(( {{ input.v }} ))", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, shape, value string) {
		if l, err := ParseShell(shape, ""); err != nil {
			checkError(t, shape, err)
		} else {
			_, _, _ = l.Render(testContext())
		}
		line, want, shell := nestedLine(shape, value)
		sl, err := ParseShell(line, shell)
		if err != nil {
			t.Fatalf("ParseShell(%q): %v", line, err)
		}
		rendered, vars, err := sl.Render(&Context{Input: map[string]string{"v": value}})
		if strings.IndexByte(value, 0) >= 0 {
			if err == nil {
				t.Fatalf("Render of a value with a NUL: no error")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := runShell(t, shell, rendered, vars); got != want {
			t.Fatalf("%s -c %q with %q\n got %q\nwant %q", shell, rendered, value, got, want)
		}
	})
}

// nestedLine builds a run line that prints the segment {{ input.v }},
// nested in the contexts that the bytes of shape choose (at most four),
// and what it prints given value.
func nestedLine(shape, value string) (line, want, shell string) {
	const bare = "{{ input.v }}"
	shell = "bash"
	word, want := bare, value
	ansi := false
	for i := 0; i < len(shape) && i < 4; i++ {
		switch shape[i] % 8 {
		case 0:
			if word == bare {
				word = `"` + word + `"`
			}
		case 1:
			if word == bare {
				word, want = "'pre "+word+" post'", "pre "+want+" post"
			}
		case 2:
			word, want = `"$(printf %s `+word+`)"`, strings.TrimRight(want, "\n")
		case 3:
			if strings.Contains(word, "`") {
				break // nested backticks need escapes of their own
			}
			word, want = "\"`printf %s "+word+"`\"", strings.TrimRight(want, "\n")
		case 4:
			if word == bare {
				word, want, ansi = "$'<\\t>"+word+"'", "<\t>"+want, true
			}
		case 5:
			shell = "sh"
		case 6:
			word, want = "x"+word+"y", "x"+want+"y"
		case 7:
			// a here-document around what was built so far
			if word == bare {
				return "cat <<EOF\n" + word + "|\nEOF", want + "|\n", shell
			}
			return "cat <<EOF\n$(printf %s " + word + ")|\nEOF", strings.TrimRight(want, "\n") + "|\n", shellFor(shell, ansi)
		}
	}
	return "printf '%s|' " + word, want + "|", shellFor(shell, ansi)
}

// shellFor is shell, but bash for a line with bash's $'…'.
func shellFor(shell string, ansi bool) string {
	if ansi {
		return "bash"
	}
	return shell
}
