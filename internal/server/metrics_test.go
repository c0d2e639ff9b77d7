package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/metrics/metricstest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// Every refusal of a request of a trigger is counted once, by trigger
// kind, routine and reason; the runs queued by the queue's observer.
func TestTriggerRefusalsCounted(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	triage := &routine.Routine{Name: "triage", Triggers: []routine.Trigger{{SlackCommand: &routine.SlackCommandTrigger{Command: "/triage", SigningSecret: slackTestSecret}}}}
	hook := &routine.Routine{Name: "hook", Triggers: []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "/in", Secret: "{{UNSET_KEY}}"}}}}
	m := metrics.New(metrics.Config{})
	queue := scheduler.NewQueue(st, nil, nil)
	queue.OnEnqueued(m.Enqueued)
	srv := server.New(server.Config{
		Store: st, Queue: queue, Routines: scheduler.NewCatalog([]*routine.Routine{triage, hook}),
		MaxQueued: 1, Metrics: m,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	send := func(path string, body io.Reader, want int) {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	now := time.Now()
	if code, v := postSlack(t, ts, slashCommand("/triage", "x"), "wrong secret", now); code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %v", code, v)
	}
	if code, v := postSlack(t, ts, slashCommand("/nope", "x"), slackTestSecret, now); code != http.StatusOK || !strings.Contains(v["text"], "No routine handles /nope") {
		t.Fatalf("unknown command: %d %v", code, v)
	}
	if code, v := postSlack(t, ts, slashCommand("/triage", "x"), slackTestSecret, now); code != http.StatusOK {
		t.Fatalf("command: %d %v", code, v)
	}
	if code, v := postSlack(t, ts, slashCommand("/triage", "y"), slackTestSecret, now); code != http.StatusTooManyRequests {
		t.Fatalf("past --max-queued: %d %v", code, v)
	}
	send("/v1/events/cpu.alert?window=soon", strings.NewReader(`{}`), http.StatusBadRequest)
	send("/hooks/in", strings.NewReader(`{}`), http.StatusServiceUnavailable)
	// No Content-Length: the handler finds the body too large as it reads.
	send("/hooks/in", io.MultiReader(strings.NewReader(`{"x":"`), strings.NewReader(strings.Repeat("a", 1<<20)+`"}`)), http.StatusRequestEntityTooLarge)
	srv.Drain()
	send("/v1/events/cpu.alert", strings.NewReader(`{}`), http.StatusServiceUnavailable)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	got := metricstest.Parse(t, rec.Body)
	want := metricstest.Samples{
		`routines_trigger_accepted_total{routine="triage",trigger="slack_command"}`: 1,

		`routines_trigger_rejected_total{reason="bad_signature",routine="triage",trigger="slack_command"}`: 1,
		`routines_trigger_rejected_total{reason="not_found",routine="",trigger="slack_command"}`:           1,
		`routines_trigger_rejected_total{reason="queue_full",routine="triage",trigger="slack_command"}`:    1,
		`routines_trigger_rejected_total{reason="bad_request",routine="",trigger="event"}`:                 1,
		`routines_trigger_rejected_total{reason="secret_unavailable",routine="hook",trigger="webhook"}`:    1,
		`routines_trigger_rejected_total{reason="body_too_large",routine="hook",trigger="webhook"}`:        1,
		`routines_trigger_rejected_total{reason="busy",routine="",trigger="event"}`:                        1,
	}
	if g := got.Of("routines_trigger_"); !reflect.DeepEqual(g, want) {
		t.Errorf("got:\n%s\nwant:\n%s", g, want)
	}
}
