package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

// TestClassifyAndLLMThroughRunOnce runs a routine whose classify step
// trains on a CSV of the routine and whose llm step asks a stand-in of the
// Messages API, with the key from a secret, for a structured answer. The
// API rate-limits the first try with retry-after: 1; the engine waits
// that long, the second try succeeds, and a later step reads both.
func TestClassifyAndLLMThroughRunOnce(t *testing.T) {
	t.Parallel()
	const key = "sk-ant-e2e-3f9a1c"
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var req map[string]any
		json.Unmarshal(raw, &req)
		body, _ := json.Marshal(req) // keys sorted
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != key || !strings.Contains(string(body), `"text":"Route: billing. Mail: I was charged twice, please refund"`) ||
			!strings.Contains(string(body), `"input_schema":{"properties":{"team":{"enum":["finance","support"]}},"required":["team"],"type":"object"}`) {
			t.Errorf("unexpected request %s %q %s", r.URL.Path, r.Header.Get("x-api-key"), body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		arrivals = append(arrivals, time.Now())
		w.Header().Set("Content-Type", "application/json")
		if len(arrivals) == 1 {
			w.Header().Set("retry-after", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
			return
		}
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"answer","input":{"team":"finance"}}],"stop_reason":"tool_use","usage":{"input_tokens":120,"output_tokens":12}}`)
	}))
	defer srv.Close()

	dir := writeRoutine(t, `name: triage
secrets: [ANTHROPIC_API_KEY]
inputs:
  api: { required: true }
  body: { required: true }
steps:
  - id: kind
    classify: { text: "{{ input.body }}", training: data/mail.csv, min_confidence: 0.5 }
  - id: ask
    retry: { attempts: 3, backoff: constant, initial: 10ms, jitter: false }
    llm:
      model: claude-sonnet-4-5
      api_key: "{{ANTHROPIC_API_KEY}}"
      base_url: "{{ input.api }}"
      prompt: "Route: {{ steps.kind.outputs.label }}. Mail: {{ input.body }}"
      json_schema: { type: object, required: [team], properties: { team: { enum: [finance, support] } } }
  - id: route
    run: echo "team={{ fromJSON(steps.ask.outputs.json).team }}" >> "$ROUTINES_OUTPUT"
`)
	writeFile(t, filepath.Join(dir, "data", "mail.csv"), "label,text\nbilling,refund my payment\nbilling,charged twice on my card\ntechnical,the app crashes\ntechnical,login error 500\n")
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"ANTHROPIC_API_KEY": key})}
	code, stdout, stderr := clitest.RunCLIWith(t, deps, "--project", dir, "run-once", dir, "-i", "api="+srv.URL, "-i", "body=I was charged twice, please refund")
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	mu.Lock()
	if len(arrivals) != 2 || arrivals[1].Sub(arrivals[0]) < time.Second {
		t.Fatalf("arrivals %v: want 2, a second apart (retry-after: 1)", arrivals)
	}
	mu.Unlock()
	for _, want := range []string{"rate_limit_error: slow down", "claude-sonnet-4-5: 120 in / 12 out tokens, stop tool_use (", "billing (confidence "} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, key) || strings.Contains(stderr, key) {
		t.Fatalf("the key shows in the output:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "mail.csv.model.json")); err != nil {
		t.Fatalf("no cached model: %v", err)
	}
	code, stdout, _ = clitest.RunCLI(t, "--project", dir, "runs", "-o", "json")
	var runs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(stdout), &runs); code != 0 || err != nil || len(runs) != 1 {
		t.Fatalf("runs: exit %d %v\n%s", code, err, stdout)
	}
	code, stdout, _ = clitest.RunCLI(t, "--project", dir, "show", runs[0].ID, "-o", "json")
	var detail struct {
		State string `json:"state"`
		Steps []struct {
			ID      string         `json:"id"`
			Outputs map[string]any `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(stdout), &detail); code != 0 || err != nil || len(detail.Steps) != 3 {
		t.Fatalf("show: exit %d %v\n%s", code, err, stdout)
	}
	kind, ask, route := detail.Steps[0].Outputs, detail.Steps[1].Outputs, detail.Steps[2].Outputs
	if kind["label"] != "billing" || !reflect.DeepEqual(ask["json"], map[string]any{"team": "finance"}) || ask["input_tokens"] != "120" || route["team"] != "finance" {
		t.Fatalf("outputs %v / %v / %v", kind, ask, route)
	}
}
