package dashboard

import (
	"context"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stats"
	"github.com/routines-dev/routines/internal/store"
)

// timeRange is a range the stats pages show: the last Span, in points
// Step wide.
type timeRange struct {
	Name string
	Span time.Duration
	Step time.Duration
}

// ranges are the ranges to choose from, each in 30 to 60 points. A month
// is read in days, the widest rollups, so that its page reads 30 rows a
// routine rather than 720 hours.
var ranges = []timeRange{
	{"1h", time.Hour, time.Minute},
	{"24h", 24 * time.Hour, 30 * time.Minute},
	{"7d", 7 * 24 * time.Hour, 3 * time.Hour},
	{"30d", 30 * 24 * time.Hour, 24 * time.Hour},
}

const defaultRange = "24h"

// rangeOf returns the range ?range= names, the default one when none or
// an unknown one does.
func rangeOf(r *http.Request) timeRange {
	name := r.URL.Query().Get("range")
	for _, rg := range ranges {
		if rg.Name == name {
			return rg
		}
	}
	return ranges[1]
}

// window is a range read at an instant: [From, To), whose points start
// at multiples of Step.
type window struct {
	timeRange
	From, To time.Time
}

func (rg timeRange) at(now time.Time) window {
	to := now.Truncate(rg.Step).Add(rg.Step)
	return window{timeRange: rg, From: to.Add(-rg.Span), To: to}
}

// stats reads the aggregates of the routines named (every one when
// none) over w, with their series.
func (d *Dashboard) stats(ctx context.Context, w window, names ...string) ([]*store.Stats, error) {
	all, err := d.cfg.Store.Stats(ctx, &store.StatsParams{Routines: names, Since: w.From, Until: w.To, Step: w.Step})
	// Only the routines the session's caller sees.
	return slices.DeleteFunc(all, func(st *store.Stats) bool { return !d.sees(ctx, st.Routine) }), err
}

// summary is what the pages show of an aggregate.
type summary struct {
	Runs, Succeeded, Errors int64
	SuccessRate, ErrorRate  float64
	Avg, P50, P95           time.Duration
	WaitP50, WaitP95        time.Duration
	CPUSeconds              float64
	GBSeconds               float64
	// PeakRSSKB is the most memory a run held, in KiB.
	PeakRSSKB int64
	Bytes     int64 // sent and received
	Usage     routine.Usage
}

// summarize derives a summary from an aggregate: the figures of
// stats.Summarize (errors are the runs that failed or went dead;
// cancelled runs are neither successes nor errors, but count as runs),
// as the pages show them.
func summarize(a *store.Aggregate) summary {
	f := stats.Summarize(a)
	s := summary{Runs: f.Invocations, Succeeded: f.ByState[routine.StateSucceeded], Errors: stats.Failures(a.ByState),
		SuccessRate: f.SuccessRate, ErrorRate: f.ErrorRate,
		Avg: a.Duration.Mean(), P50: a.Duration.Quantile(0.5), P95: a.Duration.Quantile(0.95),
		WaitP50: a.QueueWait.Quantile(0.5), WaitP95: a.QueueWait.Quantile(0.95),
		CPUSeconds: a.CPUSeconds, GBSeconds: a.Usage.GBSeconds, Usage: a.Usage,
		Bytes: a.Usage.BytesSent + a.Usage.BytesReceived, PeakRSSKB: a.PeakRSSKB}
	return s
}

// points places a value of each point of st's series on w's grid, one
// per Step from From: missing points are zero when zero is what no run
// means (a count), else a gap (NaN: a latency).
func points(w window, st *store.Stats, gapIfEmpty bool, value func(*store.Aggregate) float64) []point {
	step := pointStep(w, st)
	n := int(math.Ceil(float64(w.To.Sub(w.From)) / float64(step)))
	out := make([]point, n)
	for i := range out {
		out[i] = point{T: w.From.Add(time.Duration(i) * step), V: 0}
		if gapIfEmpty {
			out[i].V = math.NaN()
		}
	}
	if st == nil {
		return out
	}
	for i := range st.Series {
		a := &st.Series[i]
		k := int(a.Start.Sub(w.From) / step)
		if k < 0 || k >= n {
			continue
		}
		if gapIfEmpty && math.IsNaN(out[k].V) {
			out[k].V = 0
		}
		out[k].V += value(a)
	}
	return out
}

// pointStep is the time between the points of st's series over w: the
// window's step, or the series' own when that is wider.
func pointStep(w window, st *store.Stats) time.Duration {
	if st != nil && st.Step > w.Step {
		return st.Step
	}
	return w.Step
}

// merged sums the stats of several routines into one, point by point:
// the "all routines" line of the metrics page.
func merged(all []*store.Stats) *store.Stats {
	m := &store.Stats{Routine: "all routines"}
	at := map[time.Time]int{}
	for _, st := range all {
		m.Step = max(m.Step, st.Step)
		m.Totals.Merge(&st.Totals)
		for i := range st.Series {
			a := &st.Series[i]
			k, ok := at[a.Start]
			if !ok {
				k = len(m.Series)
				at[a.Start] = k
				m.Series = append(m.Series, store.Aggregate{Start: a.Start})
			}
			m.Series[k].Merge(a)
		}
	}
	return m
}

// The values charts draw of an aggregate.
func runCount(a *store.Aggregate) float64 { return float64(summarize(a).Runs) }
func errorCount(a *store.Aggregate) float64 {
	return float64(summarize(a).Errors)
}
func errorRate(a *store.Aggregate) float64 { return summarize(a).ErrorRate }
func quantile(q float64) func(*store.Aggregate) float64 {
	return func(a *store.Aggregate) float64 { return a.Duration.Quantile(q).Seconds() }
}
func waitQuantile(q float64) func(*store.Aggregate) float64 {
	return func(a *store.Aggregate) float64 { return a.QueueWait.Quantile(q).Seconds() }
}
func cpuSeconds(a *store.Aggregate) float64 { return a.CPUSeconds }
func gbSeconds(a *store.Aggregate) float64  { return a.Usage.GBSeconds }
func queueWaitSeconds(a *store.Aggregate) float64 {
	return a.QueueWait.Sum.Seconds()
}
