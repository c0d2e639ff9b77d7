package server

import (
	"io"
	"net/http"
	"time"

	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
)

// event receives POST /v1/events/<name>: the body (JSON, {} when empty) is
// the event, which the publisher gives every routine that listens to it
// (internal/events); the dedupe query parameter or Dedupe header
// overrides the listeners' dedupe keys, window their windows. An event no
// routine listens to answers 202 with no runs: events are
// fire-and-forget.
func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.rejected(events.TriggerKind, nil, bodyReason(err))
		bodyError(w, err)
		return
	}
	// The event reaches the routines of the caller's namespace only.
	ev := &events.Event{Name: r.PathValue("name"), Payload: body, DedupeKey: r.URL.Query().Get("dedupe"), Namespace: callerOf(r).Namespace}
	if ev.DedupeKey == "" {
		ev.DedupeKey = r.Header.Get("Dedupe")
	}
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			s.rejected(events.TriggerKind, nil, metrics.ReasonBadRequest)
			writeError(w, http.StatusBadRequest, "window="+v+": want a positive duration such as 10m")
			return
		}
		ev.DedupeWindow = d
	}
	if err := ev.Check(); err != nil {
		s.rejected(events.TriggerKind, nil, metrics.ReasonBadRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ls := s.events.Listeners(ev.Name, ev.Namespace); len(ls) > 0 && s.full(w, r, events.TriggerKind, nil, ls...) {
		return
	}
	res, err := s.events.Publish(r.Context(), ev)
	if err != nil {
		writeEnqueueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}
