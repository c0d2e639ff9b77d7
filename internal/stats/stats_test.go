package stats_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stats"
	"github.com/routines-dev/routines/internal/store"
)

// fake is a Reader with fixed rollups and outcome changes.
type fake struct {
	stats   []*store.Stats
	changes []store.OutcomeChange
	asked   *store.StatsParams
}

func (f *fake) Stats(_ context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	f.asked = p
	return f.stats, nil
}

func (f *fake) RunOutcomeChanges(context.Context, *store.RunOutcomeChangesParams) ([]store.OutcomeChange, error) {
	return f.changes, nil
}

var since = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// agg is an aggregate of runs of these states, each lasting d.
func agg(start time.Time, d time.Duration, states ...routine.State) store.Aggregate {
	a := store.Aggregate{Start: start, ByState: map[routine.State]int64{}}
	for _, s := range states {
		a.ByState[s]++
		a.Duration.Observe(d)
		a.QueueWait.Observe(d / 10)
		a.CPUSeconds += 0.5
	}
	a.Usage = routine.Usage{GBSeconds: 1.5, BytesSent: 100, BytesReceived: 20, Tokens: map[string]routine.Tokens{"m": {Input: 3, Output: 4}}}
	return a
}

func repeat(s routine.State, n int) []routine.State {
	out := make([]routine.State, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestReadMergesRoutines(t *testing.T) {
	t.Parallel()
	ok, failed := routine.StateSucceeded, routine.StateFailed
	a1 := agg(since, time.Second, repeat(ok, 9)...)
	b1 := agg(since, 8*time.Second, failed)
	b2 := agg(since.Add(time.Hour), 8*time.Second, ok)
	f := &fake{stats: []*store.Stats{
		{Routine: "a", Totals: a1, Step: time.Hour, Series: []store.Aggregate{a1}},
		{Routine: "b", Totals: agg(time.Time{}, 8*time.Second, failed, ok), Step: time.Hour, Series: []store.Aggregate{b1, b2}},
	}}
	p, err := stats.ParseQuery(url.Values{"since": {"2026-01-01T00:00:00Z"}, "until": {"2026-01-02T00:00:00Z"}, "step": {"1h"}}, since, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stats.Read(t.Context(), f, p)
	if err != nil {
		t.Fatal(err)
	}
	if f.asked.Step != time.Hour || !f.asked.Until.Equal(since.Add(24*time.Hour)) {
		t.Errorf("asked the store %+v", f.asked)
	}
	o := got.Overall
	if o.Invocations != 11 || o.ByState[ok] != 10 || o.ErrorRate != 1.0/11 || o.SuccessRate != 10.0/11 {
		t.Errorf("overall %+v", o.Summary)
	}
	// 9 runs of 1s and 2 of 8s: the median is a second, the p95 in 5–10s.
	if o.LatencyP50Seconds > 1 || o.LatencyP95Seconds < 5 || o.LatencyP95Seconds > 10 {
		t.Errorf("overall p50 %v p95 %v", o.LatencyP50Seconds, o.LatencyP95Seconds)
	}
	if o.CPUSeconds != 5.5 || o.GBSeconds != 3 || o.BytesSent != 200 || o.Tokens["m"] != (routine.Tokens{Input: 6, Output: 8}) {
		t.Errorf("overall usage %+v", o.Summary)
	}
	if len(o.Series) != 2 || o.Series[0].Invocations != 10 || !o.Series[1].Start.Equal(since.Add(time.Hour)) || got.StepSeconds != 3600 {
		t.Errorf("overall series %+v", o.Series)
	}
	if len(got.Routines) != 2 || got.Routines[1].Routine != "b" || got.Routines[1].ErrorRate != 0.5 {
		t.Errorf("routines %+v", got.Routines)
	}
}

func TestParseQueryRefuses(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]string{
		"since=yesterday":            "since=yesterday: want a duration before now",
		"until=2d&since=1d":          "is not before until=2d",
		"step=10s":                   "step=10s: want a duration of at least 1m",
		"since=30d&step=1m":          "makes 43200 points",
		"routine=":                   "routine= is empty",
		"since=2026-13-01T00:00:00Z": "want a duration before now",
	} {
		v, _ := url.ParseQuery(q)
		_, err := stats.ParseQuery(v, since, 24*time.Hour)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", q, err, want)
		}
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	ok, failed, dead, cancelled := routine.StateSucceeded, routine.StateFailed, routine.StateDead, routine.StateCancelled
	day := 24 * time.Hour
	a1 := agg(since.Add(time.Hour), time.Second, append(repeat(ok, 10), failed, failed)...)
	a2 := agg(since.Add(20*day), time.Second, append(repeat(ok, 6), dead, cancelled)...)
	aTotal := agg(time.Time{}, time.Second, append(repeat(ok, 16), failed, failed, dead, cancelled)...)
	b1 := agg(since.Add(2*time.Hour), time.Second, failed)
	g1 := agg(since.Add(15*day), time.Second, ok, ok, ok)
	f := &fake{
		stats: []*store.Stats{
			{Routine: "a", Totals: aTotal, Series: []store.Aggregate{a1, a2}},
			{Routine: "b", Totals: b1, Series: []store.Aggregate{b1}},
			{Routine: "gone", Totals: g1, Series: []store.Aggregate{g1}},
		},
		changes: []store.OutcomeChange{
			{Routine: "a", State: failed, FinishedAt: since.Add(time.Hour)},
			{Routine: "a", State: ok, FinishedAt: since.Add(time.Hour + 90*time.Second)},
			{Routine: "a", State: dead, FinishedAt: since.Add(20 * day)},
			{Routine: "a", State: ok, FinishedAt: since.Add(20*day + 30*time.Second)},
			{Routine: "b", State: failed, FinishedAt: since.Add(2 * time.Hour)},
		},
	}
	routines := []*routine.Routine{
		{Name: "a", Tags: []string{"ops", "prod"}, Value: &routine.Value{MinutesSavedPerRun: 5}},
		{Name: "b", Tags: []string{"ops", "<img src=x>"}},
		{Name: "idle", Value: &routine.Value{MinutesSavedPerRun: 1}},
	}
	rep, err := stats.BuildReport(t.Context(), f, routines, since, since.Add(28*day), since.Add(28*day))
	if err != nil {
		t.Fatal(err)
	}
	if f.asked.Step != time.Hour || rep.TrendStepSeconds != (7*day).Seconds() {
		t.Errorf("read step %v, trend step %v", f.asked.Step, rep.TrendStepSeconds)
	}
	byName := map[string]api.ReportRow{}
	for _, r := range append(append([]api.ReportRow{}, rep.Routines...), rep.Tags...) {
		byName[r.Name] = r
	}
	if len(rep.Routines) != 4 || len(rep.Tags) != 3 {
		t.Fatalf("routines %d, tags %d", len(rep.Routines), len(rep.Tags))
	}
	a := byName["a"]
	if a.Runs != 20 || a.Succeeded != 16 || a.Failed != 2 || a.Dead != 1 || a.Cancelled != 1 || a.ErrorRate != 0.15 {
		t.Errorf("a counts %+v", a)
	}
	if a.HoursSaved != 16*5.0/60 || a.MinutesSavedPerRun != 5 {
		t.Errorf("a hours saved %v", a.HoursSaved)
	}
	if a.Incidents != 2 || a.Recovered != 2 || a.OpenIncidents != 0 || a.MTTRSeconds == nil || *a.MTTRSeconds != 60 {
		t.Errorf("a incidents %d/%d/%d mttr %v", a.Incidents, a.Recovered, a.OpenIncidents, a.MTTRSeconds)
	}
	tr := a.ErrorTrend
	if len(tr.Points) != 4 || tr.Points[0].Runs != 12 || tr.Points[0].Errors != 2 || tr.Points[2].Runs != 8 || tr.Points[1].Runs != 0 ||
		!tr.Points[2].Start.Equal(since.Add(14*day)) {
		t.Errorf("a trend %+v", tr.Points)
	}
	if *tr.FirstHalf != 2.0/12 || *tr.SecondHalf != 1.0/8 || tr.Direction != "better" {
		t.Errorf("a halves %v %v %s", *tr.FirstHalf, *tr.SecondHalf, tr.Direction)
	}
	b := byName["b"]
	if b.Incidents != 1 || b.OpenIncidents != 1 || b.MTTRSeconds != nil || b.ErrorTrend.Direction != "unknown" || b.HoursSaved != 0 {
		t.Errorf("b %+v", b)
	}
	if g := byName["gone"]; g.Runs != 3 || g.Tags != nil || g.HoursSaved != 0 {
		t.Errorf("gone %+v", g)
	}
	if idle := byName["idle"]; idle.Runs != 0 || idle.MinutesSavedPerRun != 1 || len(idle.ErrorTrend.Points) != 4 {
		t.Errorf("idle %+v", idle)
	}
	ops := byName["ops"]
	if ops.Runs != 21 || ops.ErrorRate != 4.0/21 || ops.HoursSaved != a.HoursSaved || ops.Incidents != 3 || ops.OpenIncidents != 1 ||
		*ops.MTTRSeconds != 60 || strings.Join(ops.Routines, ",") != "a,b" {
		t.Errorf("ops %+v", ops)
	}
	if tot := rep.Total; tot.Runs != 24 || tot.Succeeded != 19 || tot.Dead != 1 || tot.Incidents != 3 || tot.OpenIncidents != 1 {
		t.Errorf("total %+v", tot)
	}

	var html bytes.Buffer
	if err := stats.WriteHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	// The figures are there; a tag, from a routine file, is text, not markup.
	for _, want := range []string{"1.3 h", "15.0%", "1m 00s", "Error rate per week", "<td>gone</td>", "&lt;img src=x&gt;"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	if strings.Contains(html.String(), "<img") {
		t.Error("a tag became markup in the HTML report")
	}
}
