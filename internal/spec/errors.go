package spec

import (
	"cmp"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// Problem is one thing wrong with a routine file, located in it; it lives
// in internal/routine so that a valid Routine carries its warnings.
type Problem = routine.Problem

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

// source is a file being read: its lines, for snippets, and the
// problems and warnings found so far.
type source struct {
	file     string
	data     []byte
	format   *format  // nil: a routine file
	lines    []string // split on first use
	problems []Problem
	warnings []Problem
}

// add records a problem at line:col, clamped into the file.
func (s *source) add(line, col int, path, msg string) {
	s.problems = append(s.problems, s.at(line, col, path, msg))
}

// warn records a warning at line:col, clamped into the file.
func (s *source) warn(line, col int, path, msg string) {
	w := s.at(line, col, path, msg)
	w.Warning = true
	s.warnings = append(s.warnings, w)
}

func (s *source) at(line, col int, path, msg string) Problem {
	line = max(line, 1)
	col = max(col, 1)
	text, _ := s.line(line)
	return Problem{File: s.file, Line: line, Col: col, Path: path, Message: msg, Snippet: text}
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
	return &Error{Problems: inOrder(s.problems)}
}

// inOrder sorts problems by position and drops exact duplicates.
func inOrder(problems []Problem) []Problem {
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.Compact(problems)
}
