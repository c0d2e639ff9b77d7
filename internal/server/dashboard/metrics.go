package dashboard

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// chart is a titled chart with its legend.
type chart struct {
	Title  string
	SVG    template.HTML
	Legend []series
}

// metricsRoutine is the charts of one routine, or of all together.
type metricsRoutine struct {
	Name    string
	Summary summary
	Charts  []chart
}

type metricsData struct {
	statsView
	Queued, Running int
	All             metricsRoutine
	Routines        []metricsRoutine
}

func seconds(v float64) string { return shortDuration(time.Duration(v * float64(time.Second))) }
func percent(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

// metric is a line a chart draws: a value of each point of a series.
type metric struct {
	Name, Class string
	Value       func(*store.Aggregate) float64
	// Count says the value is zero where no run ended, rather than a
	// gap (a latency).
	Count bool
	// PerSecond divides the value of a point by its width in seconds.
	PerSecond bool
}

// The lines of the metrics charts.
var (
	mRuns      = metric{"runs", "s0", runCount, true, false}
	mErrors    = metric{"errors", "bad", errorCount, true, false}
	mErrorRate = metric{"error rate", "bad", errorRate, false, false}
	mP50       = metric{"p50", "s0", quantile(0.5), false, false}
	mP95       = metric{"p95", "s1", quantile(0.95), false, false}
	mWaitP50   = metric{"wait p50", "s2", waitQuantile(0.5), false, false}
	mWaitP95   = metric{"wait p95", "s3", waitQuantile(0.95), false, false}
	mCPU       = metric{"CPU-seconds", "s4", cpuSeconds, true, false}
	mGBs       = metric{"GB-seconds", "s5", gbSeconds, true, false}
	// mDepth is the average number of runs waiting in the queue: by
	// Little's law, the seconds runs waited per second (each run's wait
	// counted in the point where it ended).
	mDepth = metric{"average queued", "s4", queueWaitSeconds, true, true}
)

// newChart draws a chart of st's series over w, a line per metric.
// of names what it is of (all routines, or one) for assistive technology.
func newChart(title, of string, w window, st *store.Stats, format func(float64) string, metrics ...metric) chart {
	lines := make([]series, len(metrics))
	for i, m := range metrics {
		lines[i] = series{Name: m.Name, Class: m.Class, Points: points(w, st, !m.Count, m.Value)}
		if m.PerSecond {
			width := pointStep(w, st).Seconds()
			for j := range lines[i].Points {
				lines[i].Points[j].V /= width
			}
		}
	}
	return chart{Title: title, SVG: lineChart(title+" of "+of, w.From, w.To, lines, format), Legend: lines}
}

func routineCharts(name string, w window, st *store.Stats) metricsRoutine {
	m := metricsRoutine{Name: name}
	if st != nil {
		m.Summary = summarize(&st.Totals)
	}
	m.Charts = []chart{
		newChart("Runs", name, w, st, formatNumber, mRuns, mErrors),
		newChart("Error rate", name, w, st, percent, mErrorRate),
		newChart("Latency", name, w, st, seconds, mP50, mP95),
		newChart("Queue wait", name, w, st, seconds, mWaitP50, mWaitP95),
		newChart("Queue depth", name, w, st, formatDepth, mDepth),
		newChart("Resource use", name, w, st, formatNumber, mCPU, mGBs),
	}
	return m
}

// metrics renders the metrics page: charts over the range of all the
// routines together and of each, and the queue now.
func (d *Dashboard) metrics(w http.ResponseWriter, r *http.Request) {
	win := rangeOf(r).at(time.Now())
	data := metricsData{statsView: statsView{Window: win, Ranges: ranges}}
	counts, err := d.cfg.Store.RunCount(r.Context(), &store.RunCountParams{States: []routine.State{routine.StateQueued, routine.StateRunning}})
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, storeError("runs", err))
		return
	}
	data.Queued, data.Running = counts[routine.StateQueued], counts[routine.StateRunning]
	all, err := d.stats(r.Context(), win)
	if err != nil {
		data.Problem = storeError("statistics", err)
	}
	data.All = routineCharts("all routines", win, merged(all))
	for _, st := range all {
		data.Routines = append(data.Routines, routineCharts(st.Routine, win, st))
	}
	d.render(w, r, http.StatusOK, "metrics", page{Title: "Metrics", Nav: "metrics", Range: win.Name, Data: data})
}
