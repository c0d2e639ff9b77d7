package template

import (
	"fmt"
	"regexp"
	"strings"
)

// namedValue matches the inside of {{NAME}}.
var namedValue = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Template is a parsed string: literal text and {{ … }} segments, each
// expression compiled once. It is safe for concurrent use.
type Template struct {
	src      string
	segments []segment // nil for a literal
	refs     []Ref
}

// segment is one piece of a template: literal text, a named value or an
// expression.
type segment struct {
	text  string // the literal text, or the NAME of a named value
	named bool
	expr  *expression
	start int // the offset of its {{ in the parsed string; 0 for literal text
	at    int // the offset of its expression in the parsed string
}

// Parse splits s into literal text and {{ … }} segments and compiles every
// expression. A string without {{ is a literal and costs nothing to render.
// Errors are *Error and locate the problem within s.
func Parse(s string) (*Template, error) {
	t := &Template{src: s}
	if !strings.Contains(s, "{{") {
		return t, nil
	}
	for rest, at := s, 0; rest != ""; {
		open := strings.Index(rest, "{{")
		if open < 0 {
			t.segments = append(t.segments, segment{text: rest})
			break
		}
		if open > 0 {
			t.segments = append(t.segments, segment{text: rest[:open]})
		}
		end := closing(rest, open+2)
		if end < 0 {
			return nil, &Error{Offset: at + open, Expr: rest[open:], Msg: "{{ is not closed by }}"}
		}
		inner := rest[open+2 : end]
		body := strings.TrimSpace(inner)
		offset := at + open + 2 + strings.Index(inner, body)
		switch {
		case body == "":
			return nil, &Error{Offset: at + open, Expr: rest[open : end+2], Msg: "empty {{ }}: write an expression or a NAME inside"}
		case namedValue.MatchString(body):
			t.segments = append(t.segments, segment{text: body, named: true, start: at + open})
			t.refs = append(t.refs, Ref{Root: RootNamed, Path: []string{body}, Offset: offset})
		default:
			e, refs, err := compileAt(body, offset, false)
			if err != nil {
				return nil, err
			}
			t.segments = append(t.segments, segment{expr: e, start: at + open, at: offset})
			t.refs = append(t.refs, refs...)
		}
		at += end + 2
		rest = rest[end+2:]
	}
	return t, nil
}

// closing returns the index in s of the }} that closes the {{ whose body
// starts at from, or -1. It skips braces and quotes inside the expression, so
// {{ {"a": 1}.a }} and {{ "}}" }} work.
func closing(s string, from int) int {
	depth := 0
	for i := from; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			i = endOfQuote(s, i)
			if i < 0 {
				return -1
			}
		case '{':
			depth++
		case '}':
			if depth > 0 {
				depth--
			} else if i+1 < len(s) && s[i+1] == '}' {
				return i
			}
		}
	}
	return -1
}

// endOfQuote returns the index of the quote closing the one at s[i], or -1.
func endOfQuote(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j
		}
	}
	return -1
}

// String returns the source of the template.
func (t *Template) String() string { return t.src }

// IsLiteral reports whether the template has no {{ }} segment.
func (t *Template) IsLiteral() bool { return t.segments == nil }

// Refs returns every reference the template makes, in source order, for
// static validation. The caller must not modify the result.
func (t *Template) Refs() []Ref { return t.refs }

// Render evaluates the template against c. A literal returns its text
// without allocating.
func (t *Template) Render(c *Context) (string, error) {
	if t.segments == nil {
		return t.src, nil
	}
	if len(t.segments) == 1 {
		return t.segments[0].render(c)
	}
	var b strings.Builder
	for i := range t.segments {
		s, err := t.segments[i].render(c)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func (s *segment) render(c *Context) (string, error) {
	switch {
	case s.expr != nil:
		str, err := s.expr.render(c)
		if err != nil {
			return "", fmt.Errorf("{{ %s }}: %w", s.expr.src, err)
		}
		return str, nil
	case s.named:
		if v, ok := c.Secrets[s.text]; ok {
			return v, nil
		}
		if v, ok := c.Env[s.text]; ok {
			return v, nil
		}
		return "", fmt.Errorf("{{%s}}: %s is neither a resolved secret nor an env entry", s.text, s.text)
	}
	return s.text, nil
}
