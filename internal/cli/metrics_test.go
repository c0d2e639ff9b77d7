package cli_test

import (
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/metrics/metricstest"
)

// TestServeMetrics runs routines on a real daemon — one succeeds twice
// (API, webhook), one fails in a step, one fails for want of its secret —
// refuses requests of triggers for their reasons, and reads the counts
// back from GET /metrics, which wants the daemon's token.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	const token = "t0ken"
	auth := map[string]string{"Authorization": "Bearer " + token}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok", "routine.yaml"), `name: ok
triggers:
  - webhook: { path: /ok, secret: s3cret }
steps:
  - id: say
    run: echo hi
`)
	writeFile(t, filepath.Join(dir, "bad", "routine.yaml"), `name: bad
concurrency: { max: 2, reserved: 1 }
steps:
  - id: boom
    run: exit 3
`)
	writeFile(t, filepath.Join(dir, "locked", "routine.yaml"), `name: locked
secrets: [ROUTINES_METRICS_TEST_NEVER_SET]
steps:
  - id: never
    run: echo "{{ROUTINES_METRICS_TEST_NEVER_SET}}"
`)
	d := startServe(t, dir, "--token", token, "--workers", "4")

	for _, tc := range []struct {
		url, body string
		header    map[string]string
		code      int
		state     string
	}{
		{"/v1/routines/ok/runs?wait=20s", `{}`, auth, http.StatusOK, "succeeded"},
		{"/v1/routines/bad/runs?wait=20s", `{}`, auth, http.StatusOK, "failed"},
		{"/v1/routines/locked/runs?wait=20s", `{}`, auth, http.StatusOK, "failed"},
		{"/hooks/ok?wait=20s", `{"n":1}`, map[string]string{"X-Routines-Signature": sign("s3cret", `{"n":1}`)}, http.StatusOK, "succeeded"},
		{"/hooks/ok", `{"n":2}`, map[string]string{"X-Routines-Signature": sign("wrong", `{"n":2}`)}, http.StatusUnauthorized, ""},
		{"/hooks/ok", `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge, ""},
		{"/hooks/nope", `{}`, nil, http.StatusNotFound, ""},
		{"/v1/routines/nope/runs", `{}`, auth, http.StatusNotFound, ""},
		{"/v1/routines/ok/runs", `{}`, nil, http.StatusUnauthorized, ""},
		{"/v1/routines/ok/runs", `{"who":`, auth, http.StatusBadRequest, ""},
	} {
		code, body := post(t, d.url+tc.url, tc.body, tc.header)
		if code != tc.code || (tc.state != "" && body["state"] != tc.state) {
			t.Fatalf("POST %s: %d %v, want %d %s", tc.url, code, body, tc.code, tc.state)
		}
	}

	if code, body := do(t, mustRequest(t, http.MethodGet, d.url+"/metrics")); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the token: %d %v, want 401", code, body)
	}
	// A run is final in the store a moment before the engine's observer
	// counts it.
	var got metricstest.Samples
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = metricstest.Scrape(t, d.url+"/metrics", token)
		if len(got.Of("routines_runs_total{")) == 3 || time.Now().After(deadline) {
			break
		}
	}
	want := metricstest.Samples{
		`routines_runs_started_total{routine="bad"}`:    1,
		`routines_runs_started_total{routine="locked"}`: 1,
		`routines_runs_started_total{routine="ok"}`:     2,

		`routines_runs_total{routine="bad",state="failed"}`:    1,
		`routines_runs_total{routine="locked",state="failed"}`: 1,
		`routines_runs_total{routine="ok",state="succeeded"}`:  2,

		`routines_run_duration_seconds_count{routine="bad"}`:            1,
		`routines_run_duration_seconds_count{routine="locked"}`:         1,
		`routines_run_duration_seconds_count{routine="ok"}`:             2,
		`routines_queue_wait_seconds_count{region="",routine="bad"}`:    1,
		`routines_queue_wait_seconds_count{region="",routine="locked"}`: 1,
		`routines_queue_wait_seconds_count{region="",routine="ok"}`:     2,

		`routines_step_duration_seconds_count{phase="main",routine="bad",state="failed",step="boom"}`:  1,
		`routines_step_duration_seconds_count{phase="main",routine="ok",state="succeeded",step="say"}`: 2,

		`routines_trigger_accepted_total{routine="bad",trigger="api"}`:    1,
		`routines_trigger_accepted_total{routine="locked",trigger="api"}`: 1,
		`routines_trigger_accepted_total{routine="ok",trigger="api"}`:     1,
		`routines_trigger_accepted_total{routine="ok",trigger="webhook"}`: 1,

		`routines_trigger_rejected_total{reason="bad_signature",routine="ok",trigger="webhook"}`:  1,
		`routines_trigger_rejected_total{reason="body_too_large",routine="ok",trigger="webhook"}`: 1,
		`routines_trigger_rejected_total{reason="not_found",routine="",trigger="webhook"}`:        1,
		`routines_trigger_rejected_total{reason="not_found",routine="",trigger="api"}`:            1,
		`routines_trigger_rejected_total{reason="unauthorized",routine="ok",trigger="api"}`:       1,
		`routines_trigger_rejected_total{reason="bad_request",routine="ok",trigger="api"}`:        1,

		`routines_secret_resolutions_total{outcome="not_found",provider="env",routine="locked"}`: 1,

		`routines_queue_depth{region="",routine="bad"}`:    0,
		`routines_queue_depth{region="",routine="locked"}`: 0,
		`routines_queue_depth{region="",routine="ok"}`:     0,
		`routines_concurrency_in_use{routine="bad"}`:       0,
		`routines_concurrency_in_use{routine="locked"}`:    0,
		`routines_concurrency_in_use{routine="ok"}`:        0,
		`routines_concurrency_max{routine="bad"}`:          2,
		`routines_concurrency_reserved{routine="bad"}`:     1,

		`routines_worker_slots{region=""}`:                                           4,
		`routines_worker_slots_in_use{region=""}`:                                    0,
		`routines_build_info{goversion="` + runtime.Version() + `",version="devel"}`: 1,
	}
	for _, prefix := range []string{
		"routines_runs_started_total{", "routines_runs_total{", "routines_run_duration_seconds_count{",
		"routines_queue_wait_seconds_count{", "routines_step_duration_seconds_count{",
		"routines_trigger_accepted_total{", "routines_trigger_rejected_total{", "routines_secret_resolutions_total{",
		"routines_queue_depth{", "routines_concurrency_", "routines_worker_slots", "routines_build_info{",
	} {
		if g, w := got.Of(prefix), want.Of(prefix); !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n%s\nwant:\n%s", prefix, g, w)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s among the metrics: the Go runtime and process collectors are missing", name)
		}
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestRemoteMetrics: a worker serves its metrics on --metrics-addr, with
// no token — its runs and slots — and the server its own behind the
// token: the requests it took, the queue of the deployment.
func TestRemoteMetrics(t *testing.T) {
	t.Parallel()
	d := startDeployment(t, "sqlite:"+filepath.Join(t.TempDir(), "deployment.db"), "--metrics-addr", "127.0.0.1:0", "--region", "eu-west")
	m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(d.worker.Out.String())
	if m == nil {
		t.Fatalf("the worker does not say where its metrics are: %s", d.worker.Out.String())
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "greet", "routine.yaml"), "name: greet\nregion: eu-west\nsteps:\n  - id: hi\n    run: echo hi\n")
	if code, out, errOut := d.routines(t, "push", src); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := d.routines(t, "invoke", "greet", "--wait", "--server", d.env["ROUTINES_SERVER"]); code != 0 {
		t.Fatalf("invoke: exit %d\n%s%s", code, out, errOut)
	}

	var worker metricstest.Samples
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		worker = metricstest.Scrape(t, m[1], "")
		if len(worker.Of("routines_runs_total{")) > 0 || time.Now().After(deadline) {
			break
		}
	}
	want := metricstest.Samples{
		`routines_runs_total{routine="greet",state="succeeded"}`:              1,
		`routines_worker_slots{region="eu-west"}`:                             2,
		`routines_worker_slots_in_use{region="eu-west"}`:                      0,
		`routines_queue_wait_seconds_count{region="eu-west",routine="greet"}`: 1,
	}
	for k, v := range want {
		if got, ok := worker[k]; !ok || got != v {
			t.Errorf("worker: %s = %v (there: %v), want %v", k, got, ok, v)
		}
	}
	health, err := http.Get(strings.TrimSuffix(m[1], "/metrics") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(health.Body)
	health.Body.Close()
	if health.StatusCode != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("worker GET /healthz: %d %q, want 200 {\"status\":\"ok\"}", health.StatusCode, body)
	}
	if q := worker.Of("routines_queue_depth"); len(q) > 0 {
		t.Errorf("a worker reports the queue of the deployment, which its servers do:\n%s", q)
	}

	server := metricstest.Scrape(t, "http://"+d.server.Addr+"/metrics", d.env["ROUTINES_TOKEN"])
	want = metricstest.Samples{
		`routines_trigger_accepted_total{routine="greet",trigger="api"}`: 1,
		`routines_queue_depth{region="eu-west",routine="greet"}`:         0,
		`routines_concurrency_in_use{routine="greet"}`:                   0,
	}
	for k, v := range want {
		if got, ok := server[k]; !ok || got != v {
			t.Errorf("server: %s = %v (there: %v), want %v", k, got, ok, v)
		}
	}
	if r := server.Of("routines_runs_total"); len(r) > 0 {
		t.Errorf("a server without --workers reports runs:\n%s", r)
	}
}
