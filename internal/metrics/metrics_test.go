package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"

	"github.com/routines-dev/routines/internal/metrics/metricstest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/store"
)

// countStore answers RunCount with fixed counts, or err, and counts the calls.
type countStore struct {
	store.Store // nil: any other method panics
	counts      map[string]map[routine.State]int
	err         error
	calls       atomic.Int32
}

func (s *countStore) RunCount(_ context.Context, p *store.RunCountParams) (map[routine.State]int, error) {
	s.calls.Add(1)
	return s.counts[p.Routine], s.err
}

func scrape(t *testing.T, m *Metrics) metricstest.Samples {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return metricstest.Parse(t, rec.Body)
}

var (
	t0     = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	triage = []*routine.Routine{
		{Name: "triage", Region: "eu-west", Concurrency: &routine.Concurrency{Max: 3, Reserved: 1}},
		{Name: "plain"},
	}
)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

// exercise feeds m one of everything it counts.
func exercise(m *Metrics) {
	run := &routine.Run{Routine: "triage", Region: "eu-west", Attempt: 1, QueuedAt: t0, StartedAt: at(2 * time.Second), Trigger: routine.TriggerInfo{Kind: "webhook"}}
	m.RunStarted(run)
	m.StepStarted(run, &routine.StepRun{ID: "classify"})
	m.StepFinished(run, &routine.StepRun{ID: "classify", Phase: routine.PhaseMain, State: routine.StateSucceeded, StartedAt: at(2 * time.Second), FinishedAt: at(3 * time.Second)})
	m.StepFinished(run, &routine.StepRun{ID: "notify", Phase: routine.PhaseMain, State: routine.StateSkipped})
	m.Log(routine.LogLine{Text: "hello"})
	run.State, run.FinishedAt = routine.StateSucceeded, at(5*time.Second)
	m.RunFinished(run)
	// Resumed: started before; a sub-run: no queue wait.
	m.RunStarted(&routine.Run{Routine: "triage", Attempt: 2, QueuedAt: t0, StartedAt: at(time.Hour)})
	m.RunStarted(&routine.Run{Routine: "plain", Attempt: 1, QueuedAt: t0, StartedAt: at(time.Hour), Trigger: routine.TriggerInfo{Kind: routine.TriggerRoutine}})
	m.RunEnded(&routine.Run{Routine: "gone", State: routine.StateFailed})

	req := &scheduler.Request{Routine: triage[0], Trigger: routine.TriggerInfo{Kind: "event"}}
	m.Enqueued(req, false, nil)
	m.Enqueued(req, true, nil)
	m.Enqueued(req, false, errors.New("store down"))
	m.Rejected("webhook", "", ReasonNotFound)
	m.Skipped("triage", "cron")
	m.SecretResolved("triage", "env", nil)
	m.SecretResolved("triage", "builtin", secrets.ErrNotFound)
	m.SecretResolved("triage", "vault", errors.New("connection refused"))
}

func TestCounts(t *testing.T) {
	t.Parallel()
	m := New(Config{Version: "v1.2.3"})
	exercise(m)
	st := &countStore{counts: map[string]map[routine.State]int{"triage": {routine.StateQueued: 7, routine.StateRunning: 2}}}
	m.WatchQueue(st, func() []*routine.Routine { return triage })
	m.WatchSlots("eu-west", func() (int, int) { return 8, 3 })
	got := scrape(t, m)
	want := metricstest.Samples{
		`routines_runs_started_total{routine="plain"}`:                         1,
		`routines_runs_started_total{routine="triage"}`:                        1,
		`routines_runs_total{routine="gone",state="failed"}`:                   1,
		`routines_runs_total{routine="triage",state="succeeded"}`:              1,
		`routines_run_duration_seconds_count{routine="triage"}`:                1,
		`routines_run_duration_seconds_sum{routine="triage"}`:                  3,
		`routines_queue_wait_seconds_count{region="eu-west",routine="triage"}`: 1,
		`routines_queue_wait_seconds_sum{region="eu-west",routine="triage"}`:   2,

		`routines_step_duration_seconds_count{phase="main",routine="triage",state="succeeded",step="classify"}`: 1,
		`routines_step_duration_seconds_sum{phase="main",routine="triage",state="succeeded",step="classify"}`:   1,

		`routines_trigger_accepted_total{routine="triage",trigger="event"}`:                       1,
		`routines_trigger_rejected_total{reason="deduplicated",routine="triage",trigger="event"}`: 1,
		`routines_trigger_rejected_total{reason="error",routine="triage",trigger="event"}`:        1,
		`routines_trigger_rejected_total{reason="not_found",routine="",trigger="webhook"}`:        1,
		`routines_trigger_rejected_total{reason="overlap",routine="triage",trigger="cron"}`:       1,

		`routines_secret_resolutions_total{outcome="ok",provider="env",routine="triage"}`:            1,
		`routines_secret_resolutions_total{outcome="not_found",provider="builtin",routine="triage"}`: 1,
		`routines_secret_resolutions_total{outcome="error",provider="vault",routine="triage"}`:       1,

		`routines_queue_depth{region="eu-west",routine="triage"}`: 7,
		`routines_queue_depth{region="",routine="plain"}`:         0,
		`routines_concurrency_in_use{routine="triage"}`:           2,
		`routines_concurrency_in_use{routine="plain"}`:            0,
		`routines_concurrency_max{routine="triage"}`:              3,
		`routines_concurrency_reserved{routine="triage"}`:         1,
		`routines_worker_slots{region="eu-west"}`:                 8,
		`routines_worker_slots_in_use{region="eu-west"}`:          3,
	}
	want[`routines_build_info{goversion="`+runtime.Version()+`",version="v1.2.3"}`] = 1
	if g := got.Of("routines_"); !reflect.DeepEqual(g, want) {
		t.Errorf("got:\n%s\nwant:\n%s", g, want)
	}
}

// The queue is read from the store once per QueueCache, however often
// it is scraped; a store that fails costs the scrape those figures only.
func TestQueueCache(t *testing.T) {
	t.Parallel()
	st := &countStore{counts: map[string]map[routine.State]int{"triage": {routine.StateQueued: 1}}}
	m := New(Config{})
	m.WatchQueue(st, func() []*routine.Routine { return triage })
	for range 3 {
		if got := scrape(t, m)[`routines_queue_depth{region="eu-west",routine="triage"}`]; got != 1 {
			t.Fatalf("queue depth %v, want 1", got)
		}
	}
	if n := st.calls.Load(); n != int32(len(triage)) {
		t.Errorf("%d counts in the store for 3 scrapes of %d routines within %s, want %d", n, len(triage), QueueCache, len(triage))
	}

	var log bytes.Buffer
	m = New(Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	m.WatchQueue(&countStore{err: errors.New("database is locked")}, func() []*routine.Routine { return triage })
	m.Rejected("webhook", "", ReasonNotFound)
	got := scrape(t, m)
	if len(got.Of("routines_queue_depth")) != 0 || got[`routines_trigger_rejected_total{reason="not_found",routine="",trigger="webhook"}`] != 1 {
		t.Errorf("with the store down, want the other metrics and no queue:\n%s", got.Of("routines_"))
	}
	if !strings.Contains(log.String(), "count the queued and running runs of triage: database is locked") {
		t.Errorf("the failure is not logged: %q", log.String())
	}
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	m.WatchBudgets(func() []api.BudgetStatus {
		return []api.BudgetStatus{{Tag: "ops", Amount: 200, Spent: 170, OnExceed: "warn"}, {Tag: "ai", Amount: 10, Spent: 12, OnExceed: "stop", Refusing: true}}
	})
	got := scrape(t, m)
	for series, want := range map[string]float64{
		`routines_budget_spent_ratio{on_exceed="warn",tag="ops"}`: 0.85,
		`routines_budget_spent_ratio{on_exceed="stop",tag="ai"}`:  1.2,
		`routines_budget_refusing{tag="ops"}`:                     0,
		`routines_budget_refusing{tag="ai"}`:                      1,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}

// metricName is a name of a metric of Routines, or of the Go runtime and
// process collectors, in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:routines|go|process)_[a-z0-9_]+`)

// The Grafana dashboard queries only metrics the daemon exports, and
// shows every metric of Routines; docs/observability.md lists each one.
func TestDashboardAndDocsMatchTheMetrics(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	exercise(m)
	m.WatchQueue(&countStore{}, func() []*routine.Routine { return triage })
	m.WatchSlots("", func() (int, int) { return 1, 0 })
	m.WatchBudgets(func() []api.BudgetStatus { return []api.BudgetStatus{{Tag: "ops", Amount: 1, OnExceed: "stop"}} })
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	var ours []string
	for _, f := range families {
		name := f.GetName()
		exported[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		}
		if strings.HasPrefix(name, "routines_") {
			ours = append(ours, name)
		}
	}

	data, err := os.ReadFile("../../deploy/grafana/routines.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/routines.json: %v", err)
	}
	var queries []string
	walkQueries(dash, &queries)
	if len(queries) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(queries))
	}
	used := map[string]bool{}
	for _, q := range queries {
		for _, name := range metricName.FindAllString(q, -1) {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
			if !exported[name] {
				t.Errorf("the dashboard queries %s, which the daemon does not export: %s", name, q)
			}
		}
	}
	docs, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ours {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
		if !bytes.Contains(docs, []byte("`"+name+"`")) {
			t.Errorf("docs/observability.md does not list `%s`", name)
		}
	}
	if !slices.Contains(ours, "routines_runs_total") {
		t.Errorf("routines_runs_total not exported: %v", ours)
	}
}

// walkQueries collects the PromQL of a dashboard: the exprs of its
// targets and the queries of its variables.
func walkQueries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition" || k == "query") {
				*out = append(*out, s)
			}
			walkQueries(x, out)
		}
	case []any:
		for _, x := range v {
			walkQueries(x, out)
		}
	}
}
