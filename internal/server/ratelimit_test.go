package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/metrics/metricstest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]server.Rate{
		"50/s,burst=100": {PerSecond: 50, Burst: 100},
		"50/s":           {PerSecond: 50, Burst: 50},
		"600/m":          {PerSecond: 10, Burst: 600},
		"1/h, burst=5":   {PerSecond: 1.0 / 3600, Burst: 5},
		"0.5/s":          {PerSecond: 0.5, Burst: 1},
		"off":            {},
		"0":              {},
	} {
		got, err := server.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "50", "50/d", "-1/s", "x/s", "50/s,burst=0", "50/s,bust=3", "50/s,burst=1.5", "Inf/s"} {
		if _, err := server.ParseRate(in); err == nil || !strings.Contains(err.Error(), "such as 50/s,burst=100") {
			t.Errorf("ParseRate(%q): %v, want an error saying how to write it", in, err)
		}
	}
	for _, in := range []string{"50/s,burst=100", "1/m,burst=3", "1/h,burst=5", "2.5/s,burst=1"} {
		if r, err := server.ParseRate(in); err != nil || r.String() != in {
			t.Errorf("ParseRate(%q).String() = %q, %v", in, r, err)
		}
	}
	if s := (server.Rate{}).String(); s != "off" {
		t.Errorf("the zero rate: %s", s)
	}
}

// rateBundle is a server with rate limits and metrics of its own.
type rateBundle struct {
	ts *httptest.Server
	m  *metrics.Metrics
}

func setupRates(t *testing.T, limits server.RateLimits) *rateBundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hooks := []*routine.Routine{
		{Name: "a", Triggers: []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "/a"}}}},
		{Name: "b", Triggers: []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "/b"}}}},
		{Name: "listener", Triggers: []routine.Trigger{{Event: &routine.EventTrigger{Name: "cpu.alert"}}}},
	}
	m := metrics.New(metrics.Config{})
	srv := server.New(server.Config{
		Store: st, Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog(hooks),
		Token: "tok", RateLimits: limits, Metrics: m,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &rateBundle{ts: ts, m: m}
}

// send posts (or gets, without a body) path with the Authorization
// header auth and returns the answer's status, Retry-After and error.
func (b *rateBundle) send(t *testing.T, method, path, auth string) (code int, retryAfter, msg string) {
	t.Helper()
	body := ""
	if method == http.MethodPost {
		body = `{}`
	}
	req, err := http.NewRequest(method, b.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, resp.Header.Get("Retry-After"), e.Error
}

// A burst past a token's bucket gets 429 with Retry-After and a JSON
// error; another token, and requests without one, have buckets of their
// own; a wrong token is limited as well.
func TestRateLimitPerToken(t *testing.T) {
	t.Parallel()
	b := setupRates(t, server.RateLimits{Token: server.Rate{PerSecond: 0.1, Burst: 3}})
	for i := range 3 {
		if code, _, msg := b.send(t, http.MethodGet, "/v1/status", "Bearer tok"); code != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, code, msg)
		}
	}
	code, retry, msg := b.send(t, http.MethodGet, "/v1/status", "Bearer tok")
	if secs, _ := strconv.Atoi(retry); code != http.StatusTooManyRequests || secs < 1 || secs > 10 || !strings.Contains(msg, "too many requests with this token (limit 6/m,burst=3): retry after") {
		t.Fatalf("past the burst: %d, Retry-After %q, %q", code, retry, msg)
	}
	// A run through the API is refused too, and counted.
	if code, _, _ := b.send(t, http.MethodPost, "/v1/routines/a/runs", "Bearer tok"); code != http.StatusTooManyRequests {
		t.Fatalf("a run past the burst: %d", code)
	}
	for range 3 {
		if code, _, _ := b.send(t, http.MethodGet, "/v1/status", "Bearer wrong"); code == http.StatusTooManyRequests {
			t.Fatal("another token shares the bucket")
		}
	}
	if code, _, _ := b.send(t, http.MethodGet, "/v1/status", "Bearer wrong"); code != http.StatusTooManyRequests {
		t.Fatalf("a wrong token past its burst: %d", code)
	}
	for range 5 {
		if code, _, _ := b.send(t, http.MethodGet, "/healthz", ""); code != http.StatusOK {
			t.Fatalf("without a token: %d", code)
		}
	}
	want := metricstest.Samples{`routines_trigger_rejected_total{reason="rate_limited",routine="a",trigger="api"}`: 1}
	if g := scrape(t, b.m).Of(`routines_trigger_rejected_total{reason="rate_limited"`); !reflect.DeepEqual(g, want) {
		t.Errorf("got:\n%s\nwant:\n%s", g, want)
	}
}

// Each webhook path and event name has a bucket; the paths no routine
// has share one; every refusal is counted with reason rate_limited.
func TestRateLimitPerIngressPath(t *testing.T) {
	t.Parallel()
	b := setupRates(t, server.RateLimits{Ingress: server.Rate{PerSecond: 0.1, Burst: 2}})
	for range 2 {
		if code, _, msg := b.send(t, http.MethodPost, "/hooks/a", ""); code != http.StatusAccepted {
			t.Fatalf("within the burst: %d %s", code, msg)
		}
	}
	code, retry, msg := b.send(t, http.MethodPost, "/hooks/a/", "")
	if code != http.StatusTooManyRequests || retry == "" || !strings.Contains(msg, "too many requests to /hooks/a/") {
		t.Fatalf("past the burst: %d %q %q", code, retry, msg)
	}
	if code, _, _ := b.send(t, http.MethodPost, "/hooks/b", ""); code != http.StatusAccepted {
		t.Fatalf("another path: %d", code)
	}
	for _, p := range []string{"/hooks/x", "/hooks/y"} {
		if code, _, _ := b.send(t, http.MethodPost, p, ""); code != http.StatusNotFound {
			t.Fatalf("%s: %d", p, code)
		}
	}
	if code, _, _ := b.send(t, http.MethodPost, "/hooks/z", ""); code != http.StatusTooManyRequests {
		t.Fatalf("a third unknown path: %d, want 429 (one bucket for them all)", code)
	}
	for range 2 {
		if code, _, msg := b.send(t, http.MethodPost, "/v1/events/cpu.alert", "Bearer tok"); code != http.StatusAccepted {
			t.Fatalf("event: %d %s", code, msg)
		}
	}
	if code, _, _ := b.send(t, http.MethodPost, "/v1/events/cpu.alert", "Bearer tok"); code != http.StatusTooManyRequests {
		t.Fatalf("event past the burst: %d", code)
	}
	want := metricstest.Samples{
		`routines_trigger_rejected_total{reason="rate_limited",routine="a",trigger="webhook"}`: 1,
		`routines_trigger_rejected_total{reason="rate_limited",routine="",trigger="webhook"}`:  1,
		`routines_trigger_rejected_total{reason="rate_limited",routine="",trigger="event"}`:    1,
	}
	if g := scrape(t, b.m).Of(`routines_trigger_rejected_total{reason="rate_limited"`); !reflect.DeepEqual(g, want) {
		t.Errorf("got:\n%s\nwant:\n%s", g, want)
	}
}

func scrape(t *testing.T, m *metrics.Metrics) metricstest.Samples {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return metricstest.Parse(t, rec.Body)
}
