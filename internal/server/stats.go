package server

import (
	"net/http"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stats"
)

// The ranges GET /v1/stats and GET /v1/report cover when since is absent.
const (
	defaultStatsSince  = 24 * time.Hour
	defaultReportSince = 90 * 24 * time.Hour
)

// getStats answers GET /v1/stats: the figures of the runs that ended in
// the range, per routine and overall (stats.ParseQuery reads routine=,
// since=, until=, step=).
func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	p, err := stats.ParseQuery(r.URL.Query(), time.Now(), defaultStatsSince)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p.Routines = s.narrow(r, p.Routines)
	if p.Routines != nil && len(p.Routines) == 0 {
		p.Routines = []string{""} // none of the store's: an empty list would be every routine
	}
	out, err := stats.Read(r.Context(), s.cfg.Store, p)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// getReport answers GET /v1/report: the value report of the runs that
// ended in the range (since=, until=; 90 days by default), with the
// value and tags of the routines served now.
func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, k := range []string{"routine", "step"} {
		if q.Has(k) {
			writeError(w, http.StatusBadRequest, k+"= does not apply to the report, which covers every routine in steps of its own: leave it out")
			return
		}
	}
	now := time.Now()
	p, err := stats.ParseQuery(q, now, defaultReportSince)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var served []*routine.Routine
	for _, rt := range s.cfg.Routines.All() {
		if s.sees(r, rt.Name) {
			served = append(served, rt)
		}
	}
	rep, err := stats.BuildReport(r.Context(), s.cfg.Store, served, p.Since, p.Until, now)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
