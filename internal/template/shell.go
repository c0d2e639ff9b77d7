package template

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RunVarPrefix names the environment variables that carry the values of a
// run line's {{ }} segments to the shell: ROUTINES_T1 holds the first
// segment of the line, ROUTINES_T2 the second, and so on, in source order.
const RunVarPrefix = "ROUTINES_T"

// ShellLine is a run: line prepared for the shell. Every {{ }} segment is
// replaced by a reference to an environment variable (RunVarPrefix), quoted
// for the place it is in, so a value reaches the shell as data and never as
// code: the shell expands a variable once and does not parse its value
// again. A secret written {{NAME}} thus never appears on the shell's
// command line either. The places where even a variable's value is code
// (eval, sh -c, arithmetic, a quoted here-document, …) are refused when the
// line is parsed. It is safe for concurrent use.
type ShellLine struct {
	t    *Template
	line string // what the shell runs
}

// ParseShell parses a run line for shell (bash when empty, or sh). Errors
// are *Error and locate the problem within src.
func ParseShell(src, shell string) (*ShellLine, error) {
	t, err := Parse(src)
	if err != nil {
		return nil, err
	}
	if t.segments == nil {
		return &ShellLine{t: t, line: src}, nil
	}
	lx := &shellLexer{bash: shell != "sh"}
	lx.push(&frame{kind: fCommand})
	var b strings.Builder
	n := 0
	for i := range t.segments {
		s := &t.segments[i]
		if s.expr == nil && !s.named {
			lx.feed(s.text)
			b.WriteString(s.text)
			continue
		}
		n++
		b.WriteString(lx.segment(RunVarPrefix+strconv.Itoa(n), s.start))
	}
	lx.finish()
	if len(lx.errs) > 0 {
		e := slices.MinFunc(lx.errs, func(a, b shellError) int { return cmp.Compare(a.offset, b.offset) })
		return nil, &Error{Offset: e.offset, Expr: segmentAt(t, e.offset).source(), Msg: e.msg}
	}
	return &ShellLine{t: t, line: b.String()}, nil
}

func segmentAt(t *Template, offset int) *segment {
	for i := range t.segments {
		if s := &t.segments[i]; (s.expr != nil || s.named) && s.start == offset {
			return s
		}
	}
	return &segment{}
}

// source is the {{ }} text of a segment, for error messages.
func (s *segment) source() string {
	switch {
	case s.named:
		return "{{" + s.text + "}}"
	case s.expr != nil:
		return "{{ " + s.expr.src + " }}"
	}
	return s.text
}

// Line returns the line the shell runs: the source with every segment
// replaced by its variable reference.
func (l *ShellLine) Line() string { return l.line }

// Refs returns every reference the line makes, as Template.Refs.
func (l *ShellLine) Refs() []Ref { return l.t.refs }

// Render evaluates the segments against c and returns the line the shell
// runs with the variables it refers to, which the caller puts in the
// shell's environment.
func (l *ShellLine) Render(c *Context) (line string, vars map[string]string, err error) {
	if l.t.segments == nil {
		return l.line, nil, nil
	}
	vars = make(map[string]string, len(l.t.refs))
	n := 0
	for i := range l.t.segments {
		s := &l.t.segments[i]
		if s.expr == nil && !s.named {
			continue
		}
		n++
		v, err := s.render(c)
		if err != nil {
			return "", nil, err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return "", nil, fmt.Errorf("%s: the value holds a NUL byte, which no environment variable can carry", s.source())
		}
		vars[RunVarPrefix+strconv.Itoa(n)] = v
	}
	return l.line, vars, nil
}
