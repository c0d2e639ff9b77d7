package spec

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a routine file, located in it.
type Problem struct {
	File string `json:"file"`
	// Line and Col are 1-based; Col counts characters, not bytes.
	Line int `json:"line"`
	Col  int `json:"col"`
	// Path is where in the document the problem is, such as
	// $.steps[1].needs[0]; empty for syntax errors.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	// Snippet is the source line the problem is on.
	Snippet string `json:"snippet,omitempty"`
}

// String renders the problem as file:line:col: message, followed by the
// source line and a caret under the column.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Col))
	b.WriteString(": ")
	b.WriteString(p.Message)
	if p.Snippet == "" {
		return b.String()
	}
	num := strconv.Itoa(p.Line)
	b.WriteString("\n    ")
	b.WriteString(num)
	b.WriteString(" | ")
	b.WriteString(p.Snippet)
	b.WriteString("\n    ")
	b.WriteString(strings.Repeat(" ", len(num)))
	b.WriteString(" | ")
	// Keep the tabs of the line so the caret lines up under it.
	col := 1
	for _, r := range p.Snippet {
		if col >= p.Col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		col++
	}
	b.WriteByte('^')
	return b.String()
}

// Error is an invalid routine file: every problem found in it, in the
// order of the file.
type Error struct {
	Problems []Problem
}

// Error renders every problem, one after the other.
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// source is a routine file being read: its lines, for snippets, and the
// problems found so far.
type source struct {
	file     string
	data     []byte
	lines    []string // split on first use
	problems []Problem
}

// add records a problem at line:col, clamped into the file.
func (s *source) add(line, col int, path, msg string) {
	line = max(line, 1)
	col = max(col, 1)
	text, _ := s.line(line)
	s.problems = append(s.problems, Problem{File: s.file, Line: line, Col: col, Path: path, Message: msg, Snippet: text})
}

// line returns line n (1-based) of the file.
func (s *source) line(n int) (string, bool) {
	if s.lines == nil {
		s.lines = strings.Split(strings.ReplaceAll(string(s.data), "\r\n", "\n"), "\n")
	}
	if n < 1 || n > len(s.lines) {
		return "", false
	}
	return s.lines[n-1], true
}

// err returns the problems as an *Error, sorted by position with exact
// duplicates dropped, or nil when there are none.
func (s *source) err() error {
	if len(s.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(s.problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return &Error{Problems: slices.Compact(s.problems)}
}
