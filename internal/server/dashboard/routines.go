package dashboard

import (
	"html/template"
	"net/http"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// routineRow is one routine on the routines page.
type routineRow struct {
	Name, Description, Revision string
	Triggers                    []string
	Next                        *time.Time
	Last                        *routine.Run
	Summary                     summary
	Chart                       template.HTML
}

// statsView is what the pages of stats show above their content.
type statsView struct {
	Window window
	Ranges []timeRange
	// Problem says why there are no stats, when there are none.
	Problem string
}

type routinesData struct {
	statsView
	Rows []routineRow
}

// routines renders the routines page: every routine served, its
// triggers, schedule and last run, and its stats over the range.
func (d *Dashboard) routines(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	win := rangeOf(r).at(now)
	data := routinesData{statsView: statsView{Window: win, Ranges: ranges}}
	byName := map[string]*store.Stats{}
	all, err := d.stats(r.Context(), win)
	if err != nil {
		data.Problem = storeError("statistics", err)
	}
	for _, st := range all {
		byName[st.Routine] = st
	}
	for _, rt := range d.routinesFor(r.Context()) {
		row := routineRow{Name: rt.Name, Description: rt.Description, Revision: rt.Revision, Next: d.cfg.NextFire(r.Context(), rt, now)}
		for i := range rt.Triggers {
			row.Triggers = append(row.Triggers, rt.Triggers[i].Describe())
		}
		last, err := d.cfg.Store.RunList(r.Context(), &store.RunListParams{Routine: rt.Name, Limit: 1})
		if err != nil {
			d.fail(w, r, http.StatusInternalServerError, storeError("runs", err))
			return
		}
		if len(last) > 0 {
			row.Last = last[0]
		}
		st := byName[rt.Name]
		if st != nil {
			row.Summary = summarize(&st.Totals)
		}
		row.Chart = sparkline("runs and errors of "+rt.Name+" over "+win.Name,
			series{Name: mRuns.Name, Class: mRuns.Class, Points: points(win, st, false, runCount)},
			series{Name: mErrors.Name, Class: mErrors.Class, Points: points(win, st, false, errorCount)})
		data.Rows = append(data.Rows, row)
	}
	d.render(w, r, http.StatusOK, "routines", page{Title: "Routines", Nav: "routines", Range: win.Name, Data: data})
}
