package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
)

// TestMeteringThroughRunOnce runs a routine whose http step calls a
// loopback server and whose llm steps ask stand-ins of the Messages API
// and of an OpenAI-compatible API, and a run step that burns CPU and
// holds memory: the run's usage counts exactly the bodies the server read
// and wrote, the tokens each model reported, and GB-seconds from the
// step's peak memory.
func TestMeteringThroughRunOnce(t *testing.T) {
	t.Parallel()
	var (
		mu             sync.Mutex
		read, written  int64
		anthropicCalls int
	)
	answer := strings.Repeat("pong ", 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body string
		switch r.URL.Path {
		case "/ping":
			body = answer
		case "/v1/messages":
			mu.Lock()
			anthropicCalls++
			first := anthropicCalls == 1
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if first { // a failed call moved bytes too, and used no tokens
				body = `{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`
				w.WriteHeader(529)
				break
			}
			body = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x-1","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":120,"output_tokens":12}}`
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "application/json")
			body = `{"id":"c1","model":"gpt-y","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}`
		default:
			w.WriteHeader(http.StatusNotFound)
		}
		n, _ := io.WriteString(w, body)
		mu.Lock()
		read += int64(len(raw))
		written += int64(n)
		mu.Unlock()
	}))
	defer srv.Close()

	dir := writeRoutine(t, `name: metered
secrets: [LLM_KEY]
inputs:
  api: { required: true }
steps:
  - id: ping
    http: { method: POST, url: "{{ input.api }}/ping", json: { say: "ping", n: 42 } }
  - id: claude
    retry: { attempts: 2, backoff: constant, initial: 10ms, jitter: false }
    llm: { model: claude-x, api_key: "{{LLM_KEY}}", base_url: "{{ input.api }}", prompt: "Say hi" }
  - id: gpt
    llm: { provider: openai, model: gpt-y, api_key: "{{LLM_KEY}}", base_url: "{{ input.api }}/v1", prompt: "Say hello" }
  - id: burn
    run: |
      x=$(head -c 30000000 /dev/zero | tr '\0' a)
      i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
      echo ${#x}
`)
	code, stdout, stderr := clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, map[string]string{"LLM_KEY": "sk-test"})}, "--project", dir, "run-once", dir, "-i", "api="+srv.URL, "-o", "json")
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var d api.RunDetail
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	u := d.Run.Usage
	mu.Lock()
	defer mu.Unlock()
	if anthropicCalls != 2 {
		t.Fatalf("%d calls of the Messages API, want 2", anthropicCalls)
	}
	if u.BytesSent != read || u.BytesReceived != written {
		t.Errorf("bytes sent %d, received %d: want %d and %d, what the server read and wrote", u.BytesSent, u.BytesReceived, read, written)
	}
	want := map[string]routine.Tokens{"claude-x-1": {Input: 120, Output: 12}, "gpt-y": {Input: 7, Output: 3}}
	if len(u.Tokens) != 2 || u.Tokens["claude-x-1"] != want["claude-x-1"] || u.Tokens["gpt-y"] != want["gpt-y"] {
		t.Errorf("tokens %v, want %v", u.Tokens, want)
	}
	// 30 MB held for the loop's time: well above 0.
	if u.GBSeconds <= 0 || d.Run.CPUUserMs+d.Run.CPUSysMs <= 0 {
		t.Errorf("gb-seconds %v, cpu %d+%d ms: want more than 0 from the run step", u.GBSeconds, d.Run.CPUUserMs, d.Run.CPUSysMs)
	}
	t.Logf("usage %+v, cpu %d+%d ms, max rss %d KiB", u, d.Run.CPUUserMs, d.Run.CPUSysMs, d.Run.MaxRSSKB)
}
