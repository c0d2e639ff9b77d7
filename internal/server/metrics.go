package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
)

// rejected counts a request to a trigger of kind that queued no run of
// rt (nil: it named no routine known here), for reason. The runs queued
// and deduplicated are counted by the queue (metrics.Enqueued).
func (s *Server) rejected(kind string, rt *routine.Routine, reason string) {
	name := ""
	if rt != nil {
		name = rt.Name
	}
	s.metrics.Rejected(kind, name, reason)
}

// rejectedRequest counts r as rejected for reason when it is a request
// to a trigger (ingress): for the refusals made before its handler knows
// it (the shutdown, the body budget, the token).
func (s *Server) rejectedRequest(r *http.Request, reason string) {
	if kind, rt := s.ingress(r); kind != "" {
		s.rejected(kind, rt, reason)
	}
}

// ingress returns the trigger kind of a request to an endpoint that
// queues runs, and the routine its path names when it names a known one;
// "" for other endpoints. The routine comes from the routines served, so
// that a label never holds what a caller wrote.
func (s *Server) ingress(r *http.Request) (kind string, rt *routine.Routine) {
	if r.Method != http.MethodPost {
		return "", nil
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/hooks/"):
		rt, _ = s.findHook("/" + strings.Trim(strings.TrimPrefix(p, "/hooks/"), "/"))
		return TriggerWebhook, rt
	case p == "/slack/commands":
		return TriggerSlackCommand, nil
	case strings.HasPrefix(p, "/v1/events/"):
		return events.TriggerKind, nil
	case strings.HasPrefix(p, "/v1/routines/") && strings.HasSuffix(p, "/runs"):
		name := strings.TrimSuffix(strings.TrimPrefix(p, "/v1/routines/"), "/runs")
		rt, _ = s.cfg.Routines.Get(name)
		return TriggerAPI, rt
	}
	return "", nil
}

// bodyReason is the reason a body that could not be read is refused:
// too large, or broken off.
func bodyReason(err error) string {
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		return metrics.ReasonBodyTooLarge
	}
	return metrics.ReasonBadRequest
}
