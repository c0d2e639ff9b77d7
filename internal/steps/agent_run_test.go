package steps_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

// TestAgentStepInARun runs a routine with an agent step through
// run-once: the engine renders its templates (the prompt, a header from a
// secret), the step reaches the MCP server and the model, secret values
// that a tool echoes are redacted before the model and the log see them,
// and a later step reads the agent's outputs.
func TestAgentStepInARun(t *testing.T) {
	t.Parallel()
	const token = "logs-token-8d3f"
	var (
		mu     sync.Mutex
		auth   []string
		bodies []string
	)
	type echoIn struct {
		Q string `json:"q"`
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "logs", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "search", Description: "Search the logs."}, func(_ context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		// A careless server that echoes the credentials it got.
		h := req.Extra.Header.Get("Authorization")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "found " + in.Q + " with " + h}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	logs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	defer logs.Close()
	replies := []string{
		`{"id":"m1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_1","name":"logs__search","input":{"q":"timeout"}}],"stop_reason":"tool_use","usage":{"input_tokens":50,"output_tokens":5}}`,
		`{"id":"m2","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The pool is exhausted."}],"stop_reason":"end_turn","usage":{"input_tokens":90,"output_tokens":9}}`,
	}
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		n := len(bodies)
		bodies = append(bodies, string(data))
		mu.Unlock()
		if n >= len(replies) {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, replies[n])
	}))
	defer model.Close()

	dir := t.TempDir()
	yaml := `name: slow-service
secrets: [ANTHROPIC_API_KEY, LOGS_TOKEN]
inputs:
  service: { required: true }
steps:
  - id: investigate
    agent:
      model: claude-sonnet-4-5
      api_key: "{{ANTHROPIC_API_KEY}}"
      base_url: ` + model.URL + `
      prompt: "Why is {{ input.service }} slow?"
      max_turns: 4
      mcp:
        - name: logs
          url: ` + logs.URL + `/mcp
          headers: { Authorization: "Bearer {{LOGS_TOKEN}}" }
  - id: report
    run: echo "turns={{ steps.investigate.outputs.turns }} text={{ steps.investigate.outputs.text }}"
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ANTHROPIC_API_KEY":        "sk-ant-run",
		"LOGS_TOKEN":               token,
		"ROUTINES_MASTER_KEY":      "",
		"ROUTINES_MASTER_KEY_FILE": filepath.Join(t.TempDir(), "master.key"),
	}
	deps := cli.Deps{Getenv: func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}}
	code, js, out := clitest.RunCLIWith(t, deps, "--project", dir, "run-once", dir, "--input", "service=api", "-o", "json")
	var run struct {
		State string `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(js), &run) != nil || run.State != "succeeded" {
		t.Fatalf("run-once: exit %d\n%s\n%s", code, js, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 || auth[0] != "Bearer "+token {
		t.Fatalf("Authorization at the MCP server: %q", auth)
	}
	if len(bodies) != 2 || !strings.Contains(bodies[0], `"text":"Why is api slow?"`) {
		t.Fatalf("model requests:\n%s", strings.Join(bodies, "\n"))
	}
	if !strings.Contains(bodies[1], `found timeout with Bearer ***`) || strings.Contains(bodies[1], token) {
		t.Fatalf("the tool result sent to the model:\n%s", bodies[1])
	}
	if !strings.Contains(out, `tool logs__search {"q":"timeout"} → `) || !strings.Contains(out, "turns=2 text=The pool is exhausted.") || strings.Contains(out, token) || strings.Contains(out, "sk-ant-run") {
		t.Fatalf("log:\n%s", out)
	}
}
