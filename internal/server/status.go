package server

import (
	"cmp"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

// Problems is the registry of the daemon's current problems: the server
// reports those of its webhooks and Slack commands, the daemon those of
// its triggers (it is a trigger.Problems). Safe for concurrent use.
type Problems struct {
	now  func() time.Time
	mu   sync.Mutex
	open map[problemKey]*api.Problem
}

type problemKey struct{ routine, trigger string }

// NewProblems returns an empty registry reading the time from now
// (time.Now when nil).
func NewProblems(now func() time.Time) *Problems {
	if now == nil {
		now = time.Now
	}
	return &Problems{now: now, open: map[problemKey]*api.Problem{}}
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
		pr = &api.Problem{Routine: routine, Trigger: trigger, FirstSeen: now}
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
func (p *Problems) List() []api.Problem {
	p.mu.Lock()
	out := make([]api.Problem, 0, len(p.open))
	for _, pr := range p.open {
		out = append(out, *pr)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b api.Problem) int {
		return cmp.Or(a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.Routine, b.Routine), cmp.Compare(a.Trigger, b.Trigger))
	})
	return out
}

// Status returns the daemon's status. The problems of routines the daemon
// no longer has (a reload removed them) are left out.
func (s *Server) Status() api.Status {
	st := api.Status{Problems: []api.Problem{}}
	for _, pr := range s.problems.List() {
		if _, ok := s.cfg.Routines.Get(pr.Routine); ok {
			st.Problems = append(st.Problems, pr)
		}
	}
	return st
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.Status()
	st.Problems = slices.DeleteFunc(st.Problems, func(p api.Problem) bool { return !s.sees(r, p.Routine) })
	writeJSON(w, http.StatusOK, st)
}
