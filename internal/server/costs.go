package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/routine"
)

// defaultCostsSince is the range of GET /v1/costs without since=.
const defaultCostsSince = 30 * 24 * time.Hour

// costs answers GET /v1/costs?by=routine|tag&since=30d: what the runs that
// ended in the range used and cost, with the budgets of the month.
func (s *Server) costs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by := q.Get("by")
	if by == "" {
		by = cost.ByRoutine
	}
	if by != cost.ByRoutine && by != cost.ByTag {
		writeError(w, http.StatusBadRequest, "by="+by+": want by=routine or by=tag")
		return
	}
	since := defaultCostsSince
	if v := q.Get("since"); v != "" {
		var d routine.Duration
		if err := d.UnmarshalText([]byte(v)); err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "since="+v+": want a positive duration such as 24h or 30d")
			return
		}
		since = d.D()
	}
	prices := s.cfg.Prices
	if prices == nil {
		prices = &cost.Prices{Currency: cost.DefaultCurrency}
	}
	now := time.Now().UTC()
	rep, err := cost.Read(r.Context(), s.cfg.Store, cost.Query{By: by, Since: now.Add(-since), Until: now, Tags: cost.TagsOf(s.cfg.Routines.All()), Prices: prices})
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, "this store keeps no rollups of runs to read costs from")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if s.cfg.Budgets != nil {
		rep.Budgets = s.cfg.Budgets.Status()
	}
	writeJSON(w, http.StatusOK, rep)
}

// writeEnqueueError answers a run the queue did not create: 429 when a
// budget of its routine's tag is spent (on_exceed: stop), with the
// budget's status and a Retry-After of the month's end; 500 otherwise.
func writeEnqueueError(w http.ResponseWriter, err error) {
	var spent *cost.ExceededError
	if !errors.As(err, &spent) {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	retry := time.Until(spent.Status.Month.AddDate(0, 1, 0))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()))))
	writeJSON(w, http.StatusTooManyRequests, api.BudgetRefusal{Error: spent.Error(), Budget: spent.Status})
}
