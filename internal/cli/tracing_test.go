package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/tracing/tracingtest"
)

// TestTracesOfAWebhookRun runs serve with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an in-process OTLP receiver, fires a webhook that carries a
// W3C traceparent, and follows the trace: the run's span continues the
// caller's, the steps' spans are its children, the http step's call is a
// client span under its step and carries the trace on to the server it
// calls; the run and the daemon's log lines carry the trace id.
func TestTracesOfAWebhookRun(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	called := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer upstream.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "traced", "routine.yaml"), `name: traced
triggers:
  - webhook: { path: /traced }
steps:
  - id: call
    http: { url: "`+upstream.URL+`/items?q={{ event.q }}" }
  - id: after
    run: echo "status {{ steps.call.outputs.status }}"
`)
	d := clitest.StartServeWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL,
		"OTEL_SERVICE_NAME":           "routines-test",
	})}, dir)
	if !strings.Contains(d.Out.String(), "exporting traces") {
		t.Errorf("serve did not say it exports traces: %s", d.Out)
	}

	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
		hostile     = "payload-value-8d1f"
	)
	code, body := post(t, "http://"+d.Addr+"/hooks/traced?wait=20s", `{"q":"`+hostile+`"}`, map[string]string{
		"Content-Type": "application/json",
		"traceparent":  "00-" + callerTrace + "-" + callerSpan + "-01",
	})
	if code != http.StatusOK || body["state"] != "succeeded" {
		t.Fatalf("webhook: %d %v", code, body)
	}
	runID := body["id"].(string)
	if body["trace_id"] != callerTrace {
		t.Errorf("GET /v1/runs/%s: trace_id %v, want the caller's %s", runID, body["trace_id"], callerTrace)
	}
	stored, err := openStore(t, dir).RunGet(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.TraceID != callerTrace || stored.ParentSpanID != callerSpan {
		t.Errorf("stored run: trace %q parent %q, want %s %s", stored.TraceID, stored.ParentSpanID, callerTrace, callerSpan)
	}
	upstreamTP := <-called
	// Stopping the daemon flushes the spans it holds.
	if code := d.Stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, d.Out)
	}

	run := rcv.WaitFor(t, "run traced")
	if run.TraceID != callerTrace || run.ParentSpanID != callerSpan || run.Kind != "consumer" {
		t.Errorf("run span %+v: want trace %s, parent %s, kind consumer", run, callerTrace, callerSpan)
	}
	for k, want := range map[string]string{
		"routines.run_id": runID, "routines.routine": "traced", "routines.trigger": "webhook",
		"routines.attempt": "1", "routines.state": "succeeded",
	} {
		if run.Attrs[k] != want {
			t.Errorf("run span %s = %q, want %q", k, run.Attrs[k], want)
		}
	}
	if run.Attrs["routines.revision"] == "" || run.Resource["service.name"] != "routines-test" || run.Resource["routines.role"] != "serve" {
		t.Errorf("run span: revision %q, resource %v", run.Attrs["routines.revision"], run.Resource)
	}
	steps := map[string]tracingtest.Span{}
	for _, id := range []string{"call", "after"} {
		s := rcv.WaitFor(t, "step "+id)
		steps[id] = s
		if s.TraceID != callerTrace || s.ParentSpanID != run.SpanID {
			t.Errorf("step %s span: trace %s parent %s, want a child of the run span %s", id, s.TraceID, s.ParentSpanID, run.SpanID)
		}
		for k, want := range map[string]string{
			"routines.run_id": runID, "routines.step": id, "routines.attempt": "1",
			"routines.phase": "main", "routines.state": "succeeded",
		} {
			if s.Attrs[k] != want {
				t.Errorf("step %s span %s = %q, want %q", id, k, s.Attrs[k], want)
			}
		}
	}
	if steps["after"].Attrs["routines.exit_code"] != "0" {
		t.Errorf("run step span: exit code %q, want 0", steps["after"].Attrs["routines.exit_code"])
	}
	call := rcv.WaitFor(t, "GET")
	if call.Kind != "client" || call.ParentSpanID != steps["call"].SpanID || call.Attrs["http.response.status_code"] != "200" {
		t.Errorf("http call span %+v: want a client child of step call's span %s", call, steps["call"].SpanID)
	}
	if want := "00-" + callerTrace + "-" + call.SpanID + "-01"; upstreamTP != want {
		t.Errorf("the called server got traceparent %q, want %q", upstreamTP, want)
	}
	for _, s := range rcv.Spans() {
		for k, v := range s.Attrs {
			if strings.Contains(v, hostile) {
				t.Errorf("span %s: attribute %s shows a payload value: %q", s.Name, k, v)
			}
		}
	}

	// Its stored lines show it too.
	r := routines(t, dir, "logs", runID, "-o", "json")
	var lines []routine.LogLine
	if err := json.Unmarshal([]byte(r.stdout), &lines); err != nil || r.code != 0 || len(lines) == 0 {
		t.Fatalf("logs -o json: %d %v %s %s", r.code, err, r.stdout, r.stderr)
	}
	for _, l := range lines {
		if l.TraceID != callerTrace {
			t.Errorf("logs -o json: line %+v: want trace_id %s", l, callerTrace)
		}
	}

	// The daemon's lines about the run carry its trace id.
	for _, msg := range []string{"run queued", "run finished"} {
		line := lineWith(d.Out.String(), msg)
		if !strings.Contains(line, "run_id="+runID) || !strings.Contains(line, "trace_id="+callerTrace) {
			t.Errorf("log line %q: want run_id=%s trace_id=%s", line, runID, callerTrace)
		}
	}
}

// lineWith returns the first line of out that contains msg.
func lineWith(out, msg string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, msg) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
