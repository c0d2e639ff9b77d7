package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// readyTimeout bounds the store's answer to a readiness probe.
const readyTimeout = 2 * time.Second

// healthz answers GET /healthz: the process serves HTTP. A load balancer
// or an orchestrator restarts a server that stops answering it.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers GET /readyz: the server takes work — it is not shutting
// down, its store answers and, when Writes tells, takes writes. A load
// balancer sends requests only to ready servers; during a database outage
// every server is unready, and ready again once the database answers.
// A full disk is told by its cause and since when, not by its path:
// anyone may probe.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if p, ok := s.cfg.Store.(store.Pinger); ok {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			s.log.Warn("not ready: the store does not answer", "err", err)
			writeError(w, http.StatusServiceUnavailable, "the store does not answer")
			return
		}
	}
	if s.cfg.Writes != nil {
		if since, err := s.cfg.Writes.Outage(); err != nil {
			msg, ok := unwritable(err, false)
			if !ok {
				msg = store.ErrUnwritable.Error()
			}
			w.Header().Set("Retry-After", strconv.Itoa(unwritableRetry))
			writeError(w, http.StatusServiceUnavailable, msg+" since "+since.UTC().Format(time.RFC3339))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
