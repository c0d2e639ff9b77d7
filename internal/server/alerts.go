package server

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// parseAlertQuery reads the filters of GET /v1/alerts at now; an error
// says which parameter is wrong and what to write.
func parseAlertQuery(q url.Values, now time.Time) (*store.AlertListParams, error) {
	p := &store.AlertListParams{Routine: q.Get("routine"), Limit: api.DefaultAlertLimit}
	if v := q.Get("since"); v != "" {
		var d routine.Duration
		if err := d.UnmarshalText([]byte(v)); err == nil {
			p.Since = now.Add(-d.D())
		} else if p.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("since=%s: want a duration back from now, such as 24h or 7d, or an RFC 3339 time such as 2026-12-01T00:00:00Z", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxAlertLimit {
			return nil, fmt.Errorf("limit=%s: want a number from 1 to %d", v, api.MaxAlertLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// listAlerts answers GET /v1/alerts: the records of the alerts' firings
// and clearings, newest first, with how their notifications went (the
// shape of `routines alerts -o json`).
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	p, err := parseAlertQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := s.cfg.Store.AlertList(r.Context(), p)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	list = slices.DeleteFunc(list, func(a *routine.AlertRecord) bool { return !s.sees(r, a.Routine) })
	writeJSON(w, http.StatusOK, api.NewAlertRecords(list))
}
