// Package api holds the wire types of the daemon's HTTP API — what the
// server writes and its clients (internal/client, the CLI, the emit step)
// read — so that a client needs this package and internal/routine, not
// the server and everything it imports.
package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// RunDetail is a run with its steps, as GET /v1/runs/<id> and
// `routines show -o json` write it: empty maps and lists are {} and [].
type RunDetail struct {
	*routine.Run
	Steps []*routine.StepRun `json:"steps"`
	// Waiting says why no worker of a deployment takes the run: set for
	// a queued run whose region and labels no live worker has.
	Waiting string `json:"waiting,omitempty"`
}

// NewRunDetail prepares a run and its steps for JSON.
func NewRunDetail(run *routine.Run, steps []*routine.StepRun) RunDetail {
	if steps == nil {
		steps = []*routine.StepRun{}
	}
	for i, s := range steps {
		if s.Outputs == nil {
			c := *s
			c.Outputs = routine.Outputs{}
			steps[i] = &c
		}
	}
	return RunDetail{Run: NewRun(run), Steps: steps}
}

// NewRun prepares a run for JSON, as GET /v1/runs and `routines runs -o
// json` write it: a copy whose empty input and tags are {} and [].
func NewRun(run *routine.Run) *routine.Run {
	c := *run
	if c.Input == nil {
		c.Input = map[string]string{}
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return &c
}

// EventRun is one run an event made, or the run it folded into.
type EventRun struct {
	Routine      string `json:"routine"`
	RunID        string `json:"run_id"`
	Deduplicated bool   `json:"deduplicated"`
}

// EventResult is the answer of POST /v1/events/<name>.
type EventResult struct {
	Event  string     `json:"event"`
	Runs   []EventRun `json:"runs"`
	RunIDs []string   `json:"run_ids"`
}

// Event is one thing the follower of a run learns. Exactly one field is
// set: a log line, a step that reached a final state, or, last, the run
// once it is final, with its steps.
type Event struct {
	Line *routine.LogLine
	Step *routine.StepRun
	End  *RunDetail
}

// ReadEvents reads the Server-Sent Events of GET /v1/runs/<id>/logs
// from r and calls fn for each, until fn fails, the "end" event was read
// (then it returns nil) or the stream ends before it (then an error).
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	// A line of a step is at most 64 KiB, and longer once JSON-escaped.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			var e Event
			var v any
			switch name {
			case "log":
				e.Line = &routine.LogLine{}
				v = e.Line
			case "step":
				e.Step = &routine.StepRun{}
				v = e.Step
			case "end":
				e.End = &RunDetail{}
				v = e.End
			}
			if v != nil {
				if err := json.Unmarshal([]byte(data), v); err != nil {
					return fmt.Errorf("read event %s: %w", name, err)
				}
				if err := fn(e); err != nil || e.End != nil {
					return err
				}
			}
			name, data = "", ""
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// Problem is something the daemon cannot do until its operator acts: a
// webhook whose secret is not set, an email trigger that cannot log in.
// It is listed until what failed works again.
type Problem struct {
	Routine string `json:"routine"`
	// Trigger names the trigger that fails, such as "webhook /hooks/github"
	// or "email imap.example.com/support".
	Trigger string `json:"trigger"`
	// Message says what is wrong and what to do; it is for the operator,
	// and may name secrets (never their values).
	Message   string    `json:"message"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Count is how many times it failed since FirstSeen.
	Count int `json:"count"`
}

// Status is the answer of GET /v1/status: what the daemon's operator
// should know about it.
type Status struct {
	// Problems are what fails now, the oldest first; empty, not null,
	// when nothing does.
	Problems []Problem `json:"problems"`
}
