package routine

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a routine file, or worth a warning in a
// valid one, located in it. internal/spec finds them.
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
	// Warning marks something legal that may not mean what was meant,
	// such as a six-field cron expression; it does not make a file
	// invalid.
	Warning bool `json:"warning,omitempty"`
}

// String renders the problem as file:line:col: message (warning: message
// for a warning), followed by the source line and a caret under the
// column.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Col))
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
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
