package server

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/stats"
)

// defaultCostsSince is the range of GET /v1/costs without since=.
const defaultCostsSince = 30 * 24 * time.Hour

// costs answers GET /v1/costs?by=routine|tag&since=30d: what the runs that
// ended in the range (since=, until= as GET /v1/stats reads them; 30 days
// by default) used and cost, with the budgets of the month: of the
// routines the caller sees, and the budgets of their tags.
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
	for _, k := range []string{"routine", "step"} {
		if q.Has(k) {
			writeError(w, http.StatusBadRequest, k+"= does not apply to costs, totals of every routine over the range: leave it out")
			return
		}
	}
	p, err := stats.ParseQuery(q, time.Now(), defaultCostsSince)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	prices := s.cfg.Prices
	if prices == nil {
		prices = &cost.Prices{Currency: cost.DefaultCurrency}
	}
	scope := s.scope(r)
	rep, err := cost.Read(r.Context(), s.cfg.Store, cost.Query{By: by, Since: p.Since, Until: p.Until, Routines: scope,
		Tags: cost.TagsOf(s.cfg.Routines.All()), Prices: prices})
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, "this store keeps no rollups of runs to read costs from")
		return
	case err != nil:
		writeFailure(w, r, err)
		return
	}
	if s.cfg.Budgets != nil {
		rep.Budgets = s.cfg.Budgets.Status()
		if scope != nil {
			// A budget is the deployment's, by tag: a caller is told of
			// those of its routines' tags only.
			tags := map[string]bool{}
			for _, name := range scope {
				if rt, ok := s.cfg.Routines.Get(name); ok {
					for _, tag := range rt.Tags {
						tags[tag] = true
					}
				}
			}
			rep.Budgets = slices.DeleteFunc(rep.Budgets, func(b api.BudgetStatus) bool { return !tags[b.Tag] })
		}
	}
	writeJSON(w, http.StatusOK, rep)
}

// writeEnqueueError answers a run the queue did not create: 429 when a
// budget of its routine's tag is spent (on_exceed: stop), with the
// budget's status and a Retry-After of the month's end; else as
// writeFailure.
func writeEnqueueError(w http.ResponseWriter, r *http.Request, err error) {
	var spent *cost.ExceededError
	if !errors.As(err, &spent) {
		writeFailure(w, r, err)
		return
	}
	retry := time.Until(spent.Status.Month.AddDate(0, 1, 0))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()))))
	writeJSON(w, http.StatusTooManyRequests, api.BudgetRefusal{Error: spent.Error(), Budget: spent.Status})
}
