package stats

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Reader is what a report reads: the rollups, and where runs turned from
// success to failure and back. store.Store is one.
type Reader interface {
	store.StatsReader
	RunOutcomeChanges(ctx context.Context, p *store.RunOutcomeChangesParams) ([]store.OutcomeChange, error)
}

// steadyBand is how far apart the error rates of the two halves of a
// range may be and the trend still be steady: a percentage point.
const steadyBand = 0.01

// trendStep is the width of the points of an error trend over a range:
// about a quarter in weeks, a month in days, a day in hours.
func trendStep(span time.Duration) time.Duration {
	switch {
	case span >= 28*24*time.Hour:
		return 7 * 24 * time.Hour
	case span >= 2*24*time.Hour:
		return 24 * time.Hour
	}
	return time.Hour
}

// BuildReport computes the value report of the runs that ended in
// [since, until). routines are the routines served now, whose value and
// tags count (a routine with runs but no definition any more counts with
// neither). The rollups give the volume and the trend, read in points of
// an hour (a day past half a year) and summed into the trend's steps;
// the outcome changes give the incidents, exactly.
func BuildReport(ctx context.Context, r Reader, routines []*routine.Routine, since, until, now time.Time) (*api.Report, error) {
	since, until = since.UTC(), until.UTC()
	span := until.Sub(since)
	step := trendStep(span)
	read := time.Hour
	if span > 183*24*time.Hour {
		read = 24 * time.Hour
	}
	list, err := r.Stats(ctx, &store.StatsParams{Since: since, Until: until, Step: read})
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	changes, err := r.RunOutcomeChanges(ctx, &store.RunOutcomeChangesParams{Since: since, Until: until})
	if err != nil {
		return nil, err
	}
	rep := &report{since: since, mid: since.Add(span / 2), step: step, points: int((span + step - 1) / step), tallies: map[string]*tally{}}
	for _, s := range list {
		rep.tally(s.Routine).rollups(rep, s)
	}
	for _, c := range changes {
		rep.tally(c.Routine).change(c)
	}
	defs := map[string]*routine.Routine{}
	for _, rt := range routines {
		defs[rt.Name] = rt
		rep.tally(rt.Name)
	}
	out := &api.Report{Since: since, Until: until, GeneratedAt: now.UTC(), TrendStepSeconds: step.Seconds(),
		Routines: []api.ReportRow{}, Tags: []api.ReportRow{}}
	total := rep.newTally()
	byTag := map[string]*tally{}
	tagRoutines := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(rep.tallies)) {
		t := rep.tallies[name]
		row := api.ReportRow{Name: name}
		if rt := defs[name]; rt != nil {
			row.Tags = rt.Tags
			if rt.Value != nil {
				row.MinutesSavedPerRun = rt.Value.MinutesSavedPerRun
				t.minutes = float64(t.byState[routine.StateSucceeded]) * rt.Value.MinutesSavedPerRun
			}
			for _, tag := range rt.Tags {
				if byTag[tag] == nil {
					byTag[tag] = rep.newTally()
				}
				byTag[tag].add(t)
				tagRoutines[tag] = append(tagRoutines[tag], name)
			}
		}
		total.add(t)
		out.Routines = append(out.Routines, rep.row(row, t))
	}
	for _, tag := range slices.Sorted(maps.Keys(byTag)) {
		out.Tags = append(out.Tags, rep.row(api.ReportRow{Name: tag, Routines: tagRoutines[tag]}, byTag[tag]))
	}
	out.Total = rep.row(api.ReportRow{}, total)
	return out, nil
}

// report is a report being computed: the range's trend points and the
// tally of each routine.
type report struct {
	since, mid time.Time
	step       time.Duration
	points     int
	tallies    map[string]*tally
}

// tally is what a report counts of a routine, or of routines together.
type tally struct {
	byState map[routine.State]int64
	// minutes saved, summed before they become hours, once
	minutes float64
	trend   []api.TrendPoint // runs and errors per step
	halves  [2]api.TrendPoint
	// Incidents: the one failing now began at failing (zero: none).
	incidents, recovered, open int
	recovery                   time.Duration
	failing                    time.Time
}

func (rep *report) newTally() *tally {
	t := &tally{byState: map[routine.State]int64{}, trend: make([]api.TrendPoint, rep.points)}
	for i := range t.trend {
		t.trend[i].Start = rep.since.Add(time.Duration(i) * rep.step)
	}
	return t
}

func (rep *report) tally(name string) *tally {
	if rep.tallies[name] == nil {
		rep.tallies[name] = rep.newTally()
	}
	return rep.tallies[name]
}

// rollups counts a routine's rollups: a point that begins before the
// range (the store's resolution is coarser than its bounds) counts in
// the first step.
func (t *tally) rollups(rep *report, s *store.Stats) {
	for st, n := range s.Totals.ByState {
		t.byState[st] += n
	}
	for _, pt := range s.Series {
		i := max(0, min(int(pt.Start.Sub(rep.since)/rep.step), len(t.trend)-1))
		half := 0
		if !pt.Start.Before(rep.mid) {
			half = 1
		}
		for _, tp := range []*api.TrendPoint{&t.trend[i], &t.halves[half]} {
			for _, n := range pt.ByState {
				tp.Runs += n
			}
			tp.Errors += Failures(pt.ByState)
		}
	}
}

// change follows a routine's incidents through its outcome changes, in
// their order.
func (t *tally) change(c store.OutcomeChange) {
	switch {
	case c.State != routine.StateSucceeded && t.failing.IsZero():
		t.incidents++
		t.failing = c.FinishedAt
	case c.State == routine.StateSucceeded && !t.failing.IsZero():
		t.recovered++
		t.recovery += c.FinishedAt.Sub(t.failing)
		t.failing = time.Time{}
	}
}

// add adds the counts of o to t; an incident o has open stays open.
func (t *tally) add(o *tally) {
	for st, n := range o.byState {
		t.byState[st] += n
	}
	t.minutes += o.minutes
	for i := range t.trend {
		t.trend[i].Runs += o.trend[i].Runs
		t.trend[i].Errors += o.trend[i].Errors
	}
	for i := range t.halves {
		t.halves[i].Runs += o.halves[i].Runs
		t.halves[i].Errors += o.halves[i].Errors
	}
	t.incidents += o.incidents
	t.recovered += o.recovered
	t.open += o.open
	if !o.failing.IsZero() {
		t.open++
	}
	t.recovery += o.recovery
}

// row fills in the figures of t.
func (rep *report) row(row api.ReportRow, t *tally) api.ReportRow {
	row.Succeeded = t.byState[routine.StateSucceeded]
	row.Failed = t.byState[routine.StateFailed]
	row.Dead = t.byState[routine.StateDead]
	row.Cancelled = t.byState[routine.StateCancelled]
	for _, n := range t.byState {
		row.Runs += n
	}
	row.ErrorRate = rate(row.Failed+row.Dead, row.Runs)
	row.HoursSaved = t.minutes / 60
	row.Incidents, row.Recovered, row.OpenIncidents = t.incidents, t.recovered, t.open
	if !t.failing.IsZero() {
		row.OpenIncidents++
	}
	if t.recovered > 0 {
		mttr := (t.recovery / time.Duration(t.recovered)).Seconds()
		row.MTTRSeconds = &mttr
	}
	row.ErrorTrend.Points = make([]api.TrendPoint, len(t.trend))
	for i, tp := range t.trend {
		tp.ErrorRate = rate(tp.Errors, tp.Runs)
		row.ErrorTrend.Points[i] = tp
	}
	var halves [2]*float64
	for i, h := range t.halves {
		if h.Runs > 0 {
			r := rate(h.Errors, h.Runs)
			halves[i] = &r
		}
	}
	tr := &row.ErrorTrend
	tr.FirstHalf, tr.SecondHalf = halves[0], halves[1]
	switch {
	case tr.FirstHalf == nil || tr.SecondHalf == nil:
		tr.Direction = "unknown"
	case *tr.SecondHalf > *tr.FirstHalf+steadyBand:
		tr.Direction = "worse"
	case *tr.SecondHalf < *tr.FirstHalf-steadyBand:
		tr.Direction = "better"
	default:
		tr.Direction = "steady"
	}
	return row
}

func rate(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}
