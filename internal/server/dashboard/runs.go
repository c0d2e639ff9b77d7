package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// runsPage is how many runs a page of the runs table shows.
const runsPage = 50

// formTime is how the time filters are written: the value of an HTML
// datetime-local input, read as UTC.
const formTime = "2006-01-02T15:04"

// runFilter is the filter form of the runs page, as the query holds it.
type runFilter struct {
	Routine, State, Trigger, Tag, Since, Until, ID, Before string
}

func filterOf(q url.Values) runFilter {
	return runFilter{Routine: q.Get("routine"), State: q.Get("state"), Trigger: q.Get("trigger"), Tag: q.Get("tag"),
		Since: q.Get("since"), Until: q.Get("until"), ID: strings.TrimSpace(q.Get("id")), Before: q.Get("before")}
}

// params turns the filter into the store's; an error says which field is
// wrong and what to write.
func (f runFilter) params() (*store.RunListParams, error) {
	p := &store.RunListParams{Routine: f.Routine, Trigger: f.Trigger, Tag: f.Tag, IDPrefix: f.ID, Before: f.Before, Limit: runsPage}
	if f.State != "" {
		if !routine.IsRunState(routine.State(f.State)) {
			return nil, fmt.Errorf("state %q: want one of %s", f.State, routine.RunStateNames())
		}
		p.States = []routine.State{routine.State(f.State)}
	}
	for _, t := range []struct {
		name, v string
		to      *time.Time
	}{{"from", f.Since, &p.Since}, {"to", f.Until, &p.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(formTime, t.v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want a date and time such as 2026-01-31T09:30 (UTC)", t.name, t.v)
		}
		*t.to = v
	}
	return p, nil
}

// query is the filter as a query string, with before set to the cursor
// given ("" for the first page).
func (f runFilter) query(before string) string {
	q := url.Values{}
	for k, v := range map[string]string{"routine": f.Routine, "state": f.State, "trigger": f.Trigger, "tag": f.Tag,
		"since": f.Since, "until": f.Until, "id": f.ID, "before": before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

type runsData struct {
	Filter   runFilter
	Routines []string
	Triggers []string
	Runs     []*routine.Run
	Problem  string
	// First links to the first page when this is a later one; Next to
	// the next page when there may be one.
	First, Next string
}

// triggerKinds are the kinds of trigger a run may have been started by,
// for the filter's choices.
var triggerKinds = []string{"api", "cron", "email", "event", "every", "file", "manual", "replay", "rerun", "routine", "slack_command", "webhook"}

// runs renders the runs page: the runs the filter selects, newest first,
// a page at a time.
func (d *Dashboard) runs(w http.ResponseWriter, r *http.Request) {
	f := filterOf(r.URL.Query())
	data := runsData{Filter: f, Triggers: triggerKinds}
	for _, rt := range d.routinesFor(r.Context()) {
		data.Routines = append(data.Routines, rt.Name)
	}
	code := http.StatusOK
	p, err := f.params()
	if err == nil {
		p.Routines = d.runScope(r.Context())
		data.Runs, err = d.cfg.Store.RunList(r.Context(), p)
		if err != nil {
			code, data.Problem = http.StatusInternalServerError, storeError("runs", err)
		}
	} else {
		code, data.Problem = http.StatusBadRequest, err.Error()
	}
	if f.Before != "" {
		data.First = "/ui/runs?" + f.query("")
	}
	if len(data.Runs) == runsPage {
		data.Next = "/ui/runs?" + f.query(data.Runs[len(data.Runs)-1].ID)
	}
	d.render(w, r, code, "runs", page{Title: "Runs", Nav: "runs", Data: data})
}
