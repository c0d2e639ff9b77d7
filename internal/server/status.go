package server

import (
	"cmp"
	"net/http"
	"slices"
	"sync"
	"time"
)

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

// Problems is the registry of the daemon's current problems: the server
// reports those of its webhooks and Slack commands, the daemon those of
// its triggers (it is a trigger.Problems). Safe for concurrent use.
type Problems struct {
	now  func() time.Time
	mu   sync.Mutex
	open map[problemKey]*Problem
}

type problemKey struct{ routine, trigger string }

// NewProblems returns an empty registry reading the time from now
// (time.Now when nil).
func NewProblems(now func() time.Time) *Problems {
	if now == nil {
		now = time.Now
	}
	return &Problems{now: now, open: map[problemKey]*Problem{}}
}

// Report records a failure of a routine's trigger: a new problem, or one
// more of the open one, whose message becomes this one.
func (p *Problems) Report(routine, trigger, message string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	k := problemKey{routine, trigger}
	pr := p.open[k]
	if pr == nil {
		pr = &Problem{Routine: routine, Trigger: trigger, FirstSeen: now}
		p.open[k] = pr
	}
	pr.Message, pr.LastSeen = message, now
	pr.Count++
}

// Clear ends the problem of a routine's trigger, if it has one: it works.
func (p *Problems) Clear(routine, trigger string) {
	p.mu.Lock()
	delete(p.open, problemKey{routine, trigger})
	p.mu.Unlock()
}

// List returns the open problems, the oldest first.
func (p *Problems) List() []Problem {
	p.mu.Lock()
	out := make([]Problem, 0, len(p.open))
	for _, pr := range p.open {
		out = append(out, *pr)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.Routine, b.Routine), cmp.Compare(a.Trigger, b.Trigger))
	})
	return out
}

// Status is the answer of GET /v1/status: what the daemon's operator
// should know about it.
type Status struct {
	// Problems are what fails now, the oldest first; empty, not null,
	// when nothing does.
	Problems []Problem `json:"problems"`
}

// Status returns the daemon's status. The problems of routines the daemon
// no longer has (a reload removed them) are left out.
func (s *Server) Status() Status {
	st := Status{Problems: []Problem{}}
	for _, pr := range s.problems.List() {
		if _, ok := s.cfg.Routines.Get(pr.Routine); ok {
			st.Problems = append(st.Problems, pr)
		}
	}
	return st
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
}
