package alert_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/alert"
	"github.com/routines-dev/routines/internal/alert/alerttest"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

const slackToken = "xoxb-alert-test"

// fakeStats is a store whose rollups are what a test sets: the aggregate
// of each routine's runs in whatever window is asked for. Stores on one
// database share their rollups.
type fakeStats struct {
	store.Store
	*rollups
}

// Stats reads the rollups the test set, not the store's.
func (f *fakeStats) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	return f.rollups.stats(p)
}

type rollups struct {
	mu     sync.Mutex
	totals map[string]store.Aggregate
	asked  []store.StatsParams
}

func (f *rollups) stats(p *store.StatsParams) ([]*store.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, *p)
	var out []*store.Stats
	for _, name := range p.Routines {
		if agg, ok := f.totals[name]; ok {
			out = append(out, &store.Stats{Routine: name, Totals: agg})
		}
	}
	return out, nil
}

func (f *rollups) set(name string, agg store.Aggregate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.totals[name] = agg
}

// runs is the aggregate of runs that ended in state, each lasting d.
func runs(d time.Duration, by map[routine.State]int64) store.Aggregate {
	agg := store.Aggregate{ByState: by}
	for _, n := range by {
		for range n {
			agg.Duration.Observe(d)
			agg.QueueWait.Observe(10 * time.Millisecond)
		}
	}
	return agg
}

type testBundle struct {
	ctx     context.Context
	stats   *fakeStats
	clock   *clock.Virtual
	slack   *alerttest.Slack
	webhook *alerttest.Webhook
	catalog *scheduler.Catalog
	// secrets are the values the daemon resolves, by name.
	secrets map[string]string
}

// setup builds the fakes and a routine "nightly" whose alert "slow"
// (p95_latency > 2s over 15m) posts to Slack and a webhook.
func setup(t *testing.T) *testBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := &testBundle{
		ctx:     t.Context(),
		stats:   &fakeStats{Store: st, rollups: &rollups{totals: map[string]store.Aggregate{}}},
		clock:   clock.NewVirtual(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)),
		slack:   alerttest.NewSlack(t, slackToken),
		webhook: alerttest.NewWebhook(t),
		secrets: map[string]string{"SLACK_BOT_TOKEN": slackToken},
	}
	b.secrets["HOOK_URL"] = b.webhook.URL
	b.catalog = scheduler.NewCatalog([]*routine.Routine{b.parse(t, fmt.Sprintf(`name: nightly
secrets: [SLACK_BOT_TOKEN, HOOK_URL]
steps:
  - id: work
    run: echo hi
alerts:
  - name: slow
    when: p95_latency > 2s
    notify: { slack: "#ops", slack_base_url: %q, webhook: "{{HOOK_URL}}" }
`, b.slack.URL))})
	return b
}

func (b *testBundle) parse(t *testing.T, yaml string) *routine.Routine {
	t.Helper()
	r, err := spec.Parse("routine.yaml", []byte(yaml), "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// evaluator returns an evaluator of the bundle's routines on st.
func (b *testBundle) evaluator(holder string, st alert.Store) *alert.Evaluator {
	return alert.New(alert.Config{
		Store: st, Routines: b.catalog, Kinds: stepkind.NewRegistry(steps.SlackKind{}, steps.HTTPKind{}),
		Secret: func(_ context.Context, _ *routine.Routine, ref routine.SecretRef) (string, error) {
			if v, ok := b.secrets[ref.Name]; ok {
				return v, nil
			}
			return "", errors.New("secret " + ref.Name + " is not set")
		},
		Holder: holder, Clock: b.clock, DashboardURL: "http://dash.example:8080/",
		Logger: slog.New(slog.DiscardHandler),
	})
}

// pass evaluates, then delivers, and says how many transitions it recorded.
func pass(ctx context.Context, e *alert.Evaluator) int {
	n := e.Evaluate(ctx)
	e.Deliver(ctx)
	return n
}

func TestFiresOnceAndClearsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.evaluator("a", b.stats)
	// No run, then fast runs: nothing to say.
	if n := pass(b.ctx, e); n != 0 {
		t.Fatalf("a pass without runs recorded %d transitions", n)
	}
	b.stats.set("nightly", runs(time.Second, map[routine.State]int64{routine.StateSucceeded: 10}))
	if n := pass(b.ctx, e); n != 0 {
		t.Fatalf("a pass of fast runs recorded %d transitions", n)
	}
	// Slow runs: it fires, once, however long they stay slow.
	b.stats.set("nightly", runs(3*time.Second, map[routine.State]int64{routine.StateSucceeded: 12}))
	for i := range 3 {
		b.clock.Advance(alert.DefaultInterval)
		want := 0
		if i == 0 {
			want = 1
		}
		if n := pass(b.ctx, e); n != want {
			t.Fatalf("pass %d of slow runs recorded %d transitions", i, n)
		}
	}
	posts, payloads := b.slack.Posts(), b.webhook.Payloads()
	if len(posts) != 1 || len(payloads) != 1 {
		t.Fatalf("while slow: %d Slack posts and %d webhook calls, want 1 each", len(posts), len(payloads))
	}
	if got := posts[0].Get("text"); posts[0].Get("channel") != "#ops" || !strings.Contains(got, "nightly: alert slow (p95_latency &gt; 2s) is firing: p95_latency ") ||
		!strings.Contains(got, "over the last 15m (12 runs)") || !strings.Contains(got, "<http://dash.example:8080/ui/runs?routine=nightly|runs>") {
		t.Errorf("Slack post = %v", posts[0])
	}
	p := payloads[0]
	firedAt := b.clock.Now().Add(-2 * alert.DefaultInterval)
	if p.Routine != "nightly" || p.Alert != "slow" || p.State != routine.AlertFiring || p.Metric != "p95_latency" ||
		p.Value < 2 || p.Value > 5 || p.Threshold != 2 || p.Runs != 12 || p.Over != routine.Duration(15*time.Minute) ||
		!p.At.Equal(firedAt) || !p.StartedAt.Equal(firedAt) || p.URL != "http://dash.example:8080/ui/runs?routine=nightly" {
		t.Errorf("webhook payload = %+v", p)
	}
	// Fast again: it clears, once.
	b.stats.set("nightly", runs(time.Second, map[routine.State]int64{routine.StateSucceeded: 12}))
	b.clock.Advance(alert.DefaultInterval)
	if n := pass(b.ctx, e); n != 1 {
		t.Fatalf("the pass after the runs are fast again recorded %d transitions, want 1", n)
	}
	b.clock.Advance(alert.DefaultInterval)
	if n := pass(b.ctx, e); n != 0 {
		t.Fatalf("a second pass of fast runs recorded %d transitions", n)
	}
	posts, payloads = b.slack.Posts(), b.webhook.Payloads()
	if len(posts) != 2 || len(payloads) != 2 {
		t.Fatalf("after clearing: %d Slack posts and %d webhook calls, want 2 each", len(posts), len(payloads))
	}
	if got := posts[1].Get("text"); !strings.Contains(got, ":white_check_mark: nightly: alert slow (p95_latency &gt; 2s) cleared after 45s") {
		t.Errorf("Slack post of the clearing = %q", got)
	}
	if p := payloads[1]; p.State != routine.AlertOK || !p.StartedAt.Equal(firedAt) || p.Value >= 2 {
		t.Errorf("webhook payload of the clearing = %+v", p)
	}
	list, err := b.stats.AlertList(b.ctx, &store.AlertListParams{Routine: "nightly"})
	if err != nil || len(list) != 2 {
		t.Fatalf("AlertList = %d, %v; want the firing and the clearing", len(list), err)
	}
	for _, rec := range list {
		if !rec.Done || len(rec.Deliveries) != 2 || !rec.Deliveries[0].OK || !rec.Deliveries[1].OK || rec.Attempts != 1 {
			t.Errorf("record %+v: want both deliveries done at the first try", rec)
		}
	}
	// Every read of the rollups is over the alert's window, up to now.
	for _, p := range b.stats.asked {
		if p.Until.Sub(p.Since) != 15*time.Minute || len(p.Routines) != 1 || p.Routines[0] != "nightly" {
			t.Errorf("Stats asked for %+v, want nightly over 15m", p)
		}
	}
}

func TestFailedDeliveryIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.evaluator("a", b.stats)
	b.webhook.FailNext(1)
	b.stats.set("nightly", runs(3*time.Second, map[routine.State]int64{routine.StateSucceeded: 5}))
	if n := pass(b.ctx, e); n != 1 {
		t.Fatalf("pass recorded %d transitions, want 1", n)
	}
	list, err := b.stats.AlertList(b.ctx, &store.AlertListParams{})
	if err != nil || len(list) != 1 {
		t.Fatal(len(list), err)
	}
	rec := list[0]
	if rec.Done || !rec.Deliveries[0].OK || rec.Deliveries[1].OK || !strings.Contains(rec.Deliveries[1].Error, "503") {
		t.Fatalf("after a failed webhook: %+v; want Slack sent and the webhook's 503 recorded", rec)
	}
	if strings.Contains(rec.Deliveries[1].Error, b.webhook.URL) {
		t.Errorf("the recorded error shows the webhook URL, which comes from a secret: %q", rec.Deliveries[1].Error)
	}
	// Not before its next try; then the webhook alone is sent again.
	if n := e.Deliver(b.ctx); n != 0 {
		t.Fatalf("Deliver before the next try tried %d records", n)
	}
	b.clock.Advance(alert.DefaultInterval)
	if n := pass(b.ctx, e); n != 0 {
		t.Fatalf("pass recorded %d transitions, want none", n)
	}
	if len(b.slack.Posts()) != 1 || len(b.webhook.Payloads()) != 1 {
		t.Fatalf("after the retry: %d Slack posts, %d webhook calls; want 1 each", len(b.slack.Posts()), len(b.webhook.Payloads()))
	}
	list, _ = b.stats.AlertList(b.ctx, &store.AlertListParams{})
	if rec := list[0]; !rec.Done || rec.Attempts != 2 || !rec.Deliveries[1].OK || rec.Deliveries[1].Error != "" {
		t.Errorf("after the retry: %+v; want done at the second try", rec)
	}
}

func TestSlackRefusalIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.secrets["SLACK_BOT_TOKEN"] = "xoxb-revoked"
	e := b.evaluator("a", b.stats)
	b.stats.set("nightly", runs(time.Second, map[routine.State]int64{routine.StateFailed: 1, routine.StateSucceeded: 1}))
	b.catalog.Set(b.parse(t, fmt.Sprintf(`name: nightly
secrets: [SLACK_BOT_TOKEN]
steps: [{id: work, run: echo hi}]
alerts:
  - when: error_rate > 10%%
    over: 1h
    notify: { slack: "#ops", slack_base_url: %q }
`, b.slack.URL)))
	if n := pass(b.ctx, e); n != 1 {
		t.Fatalf("pass recorded %d transitions, want 1", n)
	}
	list, err := b.stats.AlertList(b.ctx, &store.AlertListParams{})
	if err != nil || len(list) != 1 {
		t.Fatal(len(list), err)
	}
	if rec := list[0]; rec.Done || rec.Value != 0.5 || rec.Alert != "error_rate > 10%" || !strings.Contains(rec.Deliveries[0].Error, "invalid_auth: check the bot token") ||
		strings.Contains(rec.Deliveries[0].Error, "xoxb-revoked") {
		t.Errorf("record = %+v; want Slack's invalid_auth, without the token", rec)
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	agg := runs(time.Second, map[routine.State]int64{routine.StateSucceeded: 6, routine.StateFailed: 1, routine.StateDead: 1, routine.StateCancelled: 2})
	for _, tt := range []struct {
		metric string
		want   float64
		runs   int64
	}{
		{"error_rate", 0.2, 10}, {"runs", 10, 10}, {"failures", 2, 10}, {"dead_letters", 1, 10},
		{"avg_latency", 1, 10}, {"queue_wait_p95", 0.01, 10},
	} {
		v, n, ok := alert.Measure(tt.metric, &agg)
		// Quantiles are interpolated inside a histogram's bucket.
		if !ok || n != tt.runs || v < tt.want*0.95 || v > tt.want*1.05 {
			t.Errorf("Measure(%s) = %v, %d, %v; want %v of %d runs", tt.metric, v, n, ok, tt.want, tt.runs)
		}
	}
	// Of no runs, a latency and a rate have no value; a count is 0.
	var none store.Aggregate
	for _, m := range routine.Metrics {
		v, _, ok := alert.Measure(m.Name, &none)
		if ok != (m.Unit == routine.UnitCount) || v != 0 {
			t.Errorf("Measure(%s) of no runs = %v, %v", m.Name, v, ok)
		}
	}
}

func TestTwoEvaluatorsNotifyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	evaluators := []*alert.Evaluator{b.evaluator("a", b.stats), b.evaluator("b", b.stats)}
	twice(b, evaluators)
	if len(b.slack.Posts()) != 2 || len(b.webhook.Payloads()) != 2 {
		t.Fatalf("two evaluators sent %d Slack posts and %d webhook calls, want 2 each (a firing, a clearing)", len(b.slack.Posts()), len(b.webhook.Payloads()))
	}
}

// twice makes the alert of the bundle fire then clear, with evaluators
// evaluating and delivering at the same time.
func twice(b *testBundle, evaluators []*alert.Evaluator) {
	for _, d := range []time.Duration{3 * time.Second, time.Second} {
		b.stats.set("nightly", runs(d, map[routine.State]int64{routine.StateSucceeded: 4}))
		b.clock.Advance(alert.DefaultInterval)
		for range 3 {
			var wg sync.WaitGroup
			for _, e := range evaluators {
				wg.Go(func() { pass(b.ctx, e) })
			}
			wg.Wait()
		}
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.stats.set("nightly", runs(3*time.Second, map[routine.State]int64{routine.StateSucceeded: 4}))
	e := b.evaluator("a", b.stats)
	if err := e.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	// The first evaluation is at once, and its firing is delivered at once.
	b.slack.Wait(t, 1)
	b.webhook.Wait(t, 1)
	b.stats.set("nightly", runs(time.Second, map[routine.State]int64{routine.StateSucceeded: 4}))
	b.clock.Advance(alert.DefaultInterval)
	b.webhook.Wait(t, 2)
	if err := e.Stop(b.ctx); err != nil {
		t.Fatal(err)
	}
	if p := b.webhook.Payloads(); p[0].State != routine.AlertFiring || p[1].State != routine.AlertOK {
		t.Errorf("payloads = %+v, want a firing then a clearing", p)
	}
}
