package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
)

// mcpServerEnv makes the test binary an MCP server over stdio, for the
// agent tests that start one as a command.
const mcpServerEnv = "ROUTINES_TEST_MCP_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(mcpServerEnv) == "1" {
		s := newTestMCPServer(func(string, any) {})
		if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

type searchIn struct {
	Q string `json:"q" jsonschema:"what to look for"`
}

type countIn struct {
	Service string `json:"service"`
}

type pathIn struct {
	Path string `json:"path"`
}

// newTestMCPServer is a logs server: search and count answer, fail fails,
// slow answers after 1.5 s, read reads a file (relative to its working
// directory). record gets each call's tool and arguments.
func newTestMCPServer(record func(tool string, args any)) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test-logs", Version: "1"}, nil)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "search", Description: "Search the logs."}, func(_ context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
		record("search", in)
		return text("3 lines match " + in.Q + ": db pool exhausted"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "count", Description: "Count errors of a service."}, func(_ context.Context, _ *mcp.CallToolRequest, in countIn) (*mcp.CallToolResult, any, error) {
		record("count", in)
		return text(`{"errors":42}`), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Always fails."}, func(_ context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
		record("fail", in)
		return nil, nil, errors.New("the log store is down")
	})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Never answers."}, func(ctx context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
		record("slow", in)
		// The server ends a session once its calls end: a short wait
		// keeps the client's Close (which waits for that) short.
		select {
		case <-ctx.Done():
		case <-time.After(1500 * time.Millisecond):
		}
		return nil, nil, errors.New("too late")
	})
	mcp.AddTool(s, &mcp.Tool{Name: "read", Description: "Read a file."}, func(_ context.Context, _ *mcp.CallToolRequest, in pathIn) (*mcp.CallToolResult, any, error) {
		record("read", in)
		data, err := os.ReadFile(in.Path)
		if err != nil {
			return nil, nil, err
		}
		return text(string(data)), nil, nil
	})
	return s
}

// mcpCall is a call the MCP server received.
type mcpCall struct {
	tool string
	args any
}

// testMCP is an MCP server over streamable HTTP on loopback.
type testMCP struct {
	url string
	mu  sync.Mutex
	got []mcpCall
	// auth holds the Authorization headers the server received.
	auth []string
}

func (m *testMCP) calls() []mcpCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mcpCall(nil), m.got...)
}

func setupMCP(t *testing.T) *testMCP {
	t.Helper()
	m := &testMCP{}
	s := newTestMCPServer(func(tool string, args any) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.got = append(m.got, mcpCall{tool, args})
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.auth = append(m.auth, r.Header.Get("Authorization"))
		m.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.url = srv.URL + "/mcp"
	return m
}

// fakeModel is a provider's API scripted turn by turn: the n-th request
// gets the n-th reply; it records each request's body and headers.
type fakeModel struct {
	url     string
	mu      sync.Mutex
	replies []string
	stall   bool // past the replies, wait for the request's end
	reqs    []map[string]any
	headers []http.Header
}

func setupModel(t *testing.T, replies ...string) *fakeModel {
	t.Helper()
	f := &fakeModel{replies: replies}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Errorf("request body is not JSON: %v: %s", err, data)
		}
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, body)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		if n >= len(f.replies) {
			if f.stall {
				<-r.Context().Done()
				return
			}
			t.Errorf("request %d past the script", n+1)
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, f.replies[n])
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// request returns the n-th request (from 1) as JSON.
func (f *fakeModel) request(t *testing.T, n int) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n > len(f.reqs) {
		t.Fatalf("request %d of %d", n, len(f.reqs))
	}
	data, _ := json.Marshal(f.reqs[n-1])
	return string(data)
}

func (f *fakeModel) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// reply is a Messages API answer with the given content blocks.
func reply(stop string, in, out int, blocks ...string) string {
	return fmt.Sprintf(`{"id":"msg_x","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[%s],"stop_reason":%q,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`,
		strings.Join(blocks, ","), stop, in, out)
}

func toolUse(id, name, input string) string {
	return fmt.Sprintf(`{"type":"tool_use","id":%q,"name":%q,"input":%s}`, id, name, input)
}

func textBlock(s string) string {
	b, _ := json.Marshal(s)
	return `{"type":"text","text":` + string(b) + `}`
}

func agentAction(modelURL string, mcpServers ...routine.AgentMCPServer) *routine.AgentAction {
	return &routine.AgentAction{
		Model: "claude-sonnet-4-5", APIKey: "sk-ant-test", BaseURL: modelURL,
		System: "You are the on-call assistant.", Prompt: "Find why api is slow.",
		MCP: mcpServers,
	}
}

// agentBundle is what an agent step was given and what it logged.
type agentBundle struct {
	x      *stepkind.Execution
	stdout strings.Builder
	usage  routine.Usage // of the last exec
}

func newAgentExecution(t *testing.T, a *routine.AgentAction) *agentBundle {
	t.Helper()
	b := &agentBundle{}
	b.x = &stepkind.Execution{
		RunID: "01RUN", StepID: "investigate", Attempt: 1,
		Action:    &routine.Action{Agent: a},
		Dir:       t.TempDir(),
		Workspace: filepath.Join(t.TempDir(), "ws"),
		Stdout:    &b.stdout,
		Redact:    func(s string) string { return strings.ReplaceAll(s, "s3cr3t-value", "***") },
	}
	return b
}

func (b *agentBundle) exec(t *testing.T) (routine.Outputs, error) {
	t.Helper()
	res, err := AgentKind{}.Execute(t.Context(), b.x)
	if res != nil {
		b.usage = res.Usage
	}
	if err != nil {
		return nil, err
	}
	wantShape(t, "agent", res.Outputs)
	return res.Outputs, nil
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s lacks %s:\n%s", what, sub, s)
		}
	}
}

func TestAgentLoopOverMCPHTTP(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	model := setupModel(t,
		reply("tool_use", 100, 10, textBlock("Let me look."), toolUse("toolu_1", "logs__search", `{"q":"timeout"}`)),
		reply("tool_use", 200, 20, toolUse("toolu_2", "logs__count", `{"service":"api"}`)),
		reply("end_turn", 300, 30, textBlock("The DB pool is exhausted: 42 errors.")),
	)
	a := agentAction(model.url, routine.AgentMCPServer{Name: "logs", URL: m.url, Headers: map[string]string{"Authorization": "Bearer crm-tok"}})
	a.MaxTurns = 3
	b := newAgentExecution(t, a)
	out, err := b.exec(t)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, b.stdout.String())
	}

	// The tools reached the MCP server with the model's arguments, with
	// the step's header.
	got := m.calls()
	if len(got) != 2 || got[0].tool != "search" || got[0].args != (searchIn{Q: "timeout"}) || got[1].tool != "count" || got[1].args != (countIn{Service: "api"}) {
		t.Fatalf("MCP calls %+v", got)
	}
	for _, h := range m.auth {
		if h != "Bearer crm-tok" {
			t.Fatalf("Authorization %q at the MCP server (all: %q)", h, m.auth)
		}
	}

	// The model got the tools, then each result as a tool_result.
	if model.count() != 3 {
		t.Fatalf("%d model calls", model.count())
	}
	if h := model.headers[0]; h.Get("x-api-key") != "sk-ant-test" || model.headers[0].Get("Authorization") != "" {
		t.Fatalf("headers %v", h)
	}
	first := model.request(t, 1)
	wantContains(t, "request 1", first,
		`"name":"logs__search"`, `"description":"Search the logs."`,
		`"input_schema":{"additionalProperties":false,"properties":{"q":{"description":"what to look for","type":"string"}},"required":["q"],"type":"object"}`,
		`"name":"logs__count"`, `"name":"logs__fail"`,
		`"system":[{"text":"You are the on-call assistant.","type":"text"}]`,
		`"messages":[{"content":[{"text":"Find why api is slow.","type":"text"}],"role":"user"}]`)
	wantContains(t, "request 2", model.request(t, 2),
		`{"id":"toolu_1","input":{"q":"timeout"},"name":"logs__search","type":"tool_use"}`,
		`{"content":[{"text":"3 lines match timeout: db pool exhausted","type":"text"}],"is_error":false,"tool_use_id":"toolu_1","type":"tool_result"}`)
	wantContains(t, "request 3", model.request(t, 3),
		`{"content":[{"text":"{\"errors\":42}","type":"text"}],"is_error":false,"tool_use_id":"toolu_2","type":"tool_result"}`)

	want := map[string]string{
		"text": "The DB pool is exhausted: 42 errors.", "json": "", "turns": "3",
		"input_tokens": "600", "output_tokens": "60", "usage": `{"input_tokens":600,"output_tokens":60}`,
		"model": "claude-sonnet-4-5-20250929", "stop_reason": "end_turn",
	}
	for k, v := range want {
		if got := routine.OutputText(out[k]); got != v {
			t.Fatalf("output %s = %q, want %q", k, got, v)
		}
	}
	// The step's usage: the tokens of its turns, by model; the bodies of
	// its calls of the model and of the MCP server.
	if u := b.usage; len(u.Tokens) != 1 || u.Tokens["claude-sonnet-4-5-20250929"] != (routine.Tokens{Input: 600, Output: 60}) || u.BytesSent <= int64(len(first)) || u.BytesReceived <= 0 {
		t.Fatalf("usage %+v", u)
	}
	calls, ok := out["tool_calls"].([]any)
	if !ok || len(calls) != 2 {
		t.Fatalf("tool_calls %#v", out["tool_calls"])
	}
	// Each call as the tool_calls output holds it, navigable: the input
	// the model gave decoded, ms a number.
	c0, c1 := calls[0].(map[string]any), calls[1].(map[string]any)
	if c0["tool"] != "logs__search" || !reflect.DeepEqual(c0["input"], map[string]any{"q": "timeout"}) || c0["ok"] != true ||
		c1["tool"] != "logs__count" || !reflect.DeepEqual(c1["input"], map[string]any{"service": "api"}) || c1["ok"] != true {
		t.Fatalf("tool_calls %#v", calls)
	}
	if _, ok := c0["ms"].(int); !ok {
		t.Fatalf("tool_calls[0].ms %#v, want an int", c0["ms"])
	}

	log := b.stdout.String()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 5 {
		t.Fatalf("log has %d lines, want 3 turns and 2 tools:\n%s", len(lines), log)
	}
	wantContains(t, "log", log,
		"turn 1: claude-sonnet-4-5-20250929: 100 in / 10 out tokens, stop tool_use (",
		`tool logs__search {"q":"timeout"} → 40 B (`, ` ms): 3 lines match timeout: db pool exhausted`,
		`tool logs__count {"service":"api"} → 13 B (`,
		"turn 3: claude-sonnet-4-5-20250929: 300 in / 30 out tokens, stop end_turn (")
	if strings.Contains(log, "sk-ant-test") || strings.Contains(log, "crm-tok") {
		t.Fatalf("the log shows a secret:\n%s", log)
	}
}

func TestAgentToolErrorsGoBackToTheModel(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	model := setupModel(t,
		reply("tool_use", 10, 1, toolUse("toolu_1", "logs__fail", `{"q":"x"}`), toolUse("toolu_2", "nope__x", `{}`), toolUse("toolu_3", "logs__count", `{"service":7}`)),
		reply("end_turn", 10, 1, textBlock("The log store is down.")),
	)
	b := newAgentExecution(t, agentAction(model.url, routine.AgentMCPServer{Name: "logs", URL: m.url}))
	out, err := b.exec(t)
	if err != nil {
		t.Fatal(err)
	}
	req := model.request(t, 2)
	wantContains(t, "request 2", req,
		`{"content":[{"text":"the log store is down","type":"text"}],"is_error":true,"tool_use_id":"toolu_1","type":"tool_result"}`,
		`"is_error":true,"tool_use_id":"toolu_2"`, `there is no tool \"nope__x\"; the tools are: logs__count, logs__fail, logs__read, logs__search, logs__slow`,
		`validating /properties/service: type: 7 has type \"integer\", want \"string\"","type":"text"}],"is_error":true,"tool_use_id":"toolu_3"`)
	if out["text"] != "The log store is down." || !strings.Contains(routine.OutputText(out["tool_calls"]), `{"input":{"q":"x"},"ms":`) ||
		!strings.Contains(routine.OutputText(out["tool_calls"]), `"ok":false,"tool":"logs__fail"}`) {
		t.Fatalf("outputs %v", out)
	}
	if got := m.calls(); len(got) != 1 || got[0].tool != "fail" {
		t.Fatalf("MCP calls %+v (invalid arguments must not reach the tool)", got)
	}
	wantContains(t, "log", b.stdout.String(), `tool logs__fail {"q":"x"} → error (`, `): the log store is down`)
}

func TestAgentMCPOverStdioInTheSandbox(t *testing.T) {
	t.Parallel()
	if _, err := sandbox.Check(); err != nil {
		t.Skipf("no Landlock: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("not for the agent"), 0o600); err != nil {
		t.Fatal(err)
	}
	model := setupModel(t,
		reply("tool_use", 10, 1, toolUse("toolu_1", "files__read", `{"path":"notes.txt"}`), toolUse("toolu_2", "files__read", fmt.Sprintf(`{"path":%q}`, outside))),
		reply("end_turn", 10, 1, textBlock("done")),
	)
	b := newAgentExecution(t, agentAction(model.url, routine.AgentMCPServer{Name: "files", Command: []string{exe, "-test.run=^$"}}))
	b.x.Env = map[string]string{mcpServerEnv: "1"}
	// The test binary is the server: the sandbox must let it be executed.
	b.x.Permissions = &routine.Permissions{Read: []string{filepath.Dir(exe)}}
	var stderr strings.Builder
	b.x.Stderr = &stderr
	if err := os.WriteFile(filepath.Join(b.x.Dir, "notes.txt"), []byte("in the routine directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.exec(t); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	req := model.request(t, 2)
	// A relative path is read in the routine directory; a file outside
	// it is missing from the run's mount namespace (denied by Landlock on
	// a host without one), and the model hears of it.
	wantContains(t, "request 2", req,
		`{"content":[{"text":"in the routine directory","type":"text"}],"is_error":false,"tool_use_id":"toolu_1","type":"tool_result"}`)
	if !strings.Contains(req, `no such file or directory","type":"text"}],"is_error":true,"tool_use_id":"toolu_2"`) &&
		!strings.Contains(req, `permission denied","type":"text"}],"is_error":true,"tool_use_id":"toolu_2"`) {
		t.Fatalf("request 2: the outside file was not refused:\n%s", req)
	}
}

func TestAgentMaxTurns(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	again := reply("tool_use", 10, 1, toolUse("toolu_1", "logs__search", `{"q":"more"}`))
	model := setupModel(t, again, again, again)
	a := agentAction(model.url, routine.AgentMCPServer{Name: "logs", URL: m.url})
	a.MaxTurns = 2
	_, err := newAgentExecution(t, a).exec(t)
	wantLLMError(t, err, routine.CodeLimitReached, false, 0, "no final answer after max_turns (2 model calls, 1 tool calls)")
	if model.count() != 2 || len(m.calls()) != 1 {
		t.Fatalf("%d model calls, %d tool calls", model.count(), len(m.calls()))
	}
}

func TestAgentTimeout(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	model := setupModel(t, reply("tool_use", 10, 1, toolUse("toolu_1", "logs__slow", `{"q":"x"}`)))
	a := agentAction(model.url, routine.AgentMCPServer{Name: "logs", URL: m.url})
	// Long enough for the connection and the first model call on a loaded
	// machine, shorter than the slow tool.
	a.Timeout = routine.Duration(time.Second)
	_, err := newAgentExecution(t, a).exec(t)
	wantLLMError(t, err, routine.CodeLimitReached, false, 0, "no final answer within the agent timeout of 1s (1 model calls, 0 tool calls)")

	// A model that does not answer in time hits the same bound.
	model = setupModel(t)
	model.stall = true
	a = agentAction(model.url)
	a.Timeout = routine.Duration(200 * time.Millisecond)
	_, err = newAgentExecution(t, a).exec(t)
	wantLLMError(t, err, routine.CodeLimitReached, false, 0, "agent timeout of 200ms")
}

func TestAgentMCPServerDown(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	model := setupModel(t)
	for _, s := range []routine.AgentMCPServer{
		{Name: "logs", URL: gone.URL + "/mcp"},
		{Name: "files", Command: []string{"/bin/true"}},
	} {
		b := newAgentExecution(t, agentAction(model.url, s))
		b.x.Unconfined = true
		_, err := b.exec(t)
		wantLLMError(t, err, "", true, 0, "agent: mcp server "+s.Name+": connect: ")
	}
	if model.count() != 0 {
		t.Fatalf("the model was called %d times without its tools", model.count())
	}
}

var causeSchema = map[string]any{
	"type": "object", "required": []any{"cause"},
	"properties": map[string]any{"cause": map[string]any{"type": "string"}},
}

func TestAgentStructuredAnswer(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	model := setupModel(t,
		reply("tool_use", 10, 1, toolUse("toolu_1", "logs__search", `{"q":"slow"}`)),
		reply("tool_use", 10, 1, toolUse("toolu_2", "answer", `{"cause": "db pool"}`)),
	)
	a := agentAction(model.url, routine.AgentMCPServer{Name: "logs", URL: m.url})
	a.JSONSchema = causeSchema
	out, err := newAgentExecution(t, a).exec(t)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["json"], map[string]any{"cause": "db pool"}) || out["turns"] != "2" || strings.Contains(routine.OutputText(out["tool_calls"]), "answer") {
		t.Fatalf("outputs %v", out)
	}
	wantContains(t, "request 1", model.request(t, 1),
		`{"description":"Give the final answer, in the shape of the input schema, once the task is done.","input_schema":{"properties":{"cause":{"type":"string"}},"required":["cause"],"type":"object"},"name":"answer"}`)

	// A model that ends with text is asked for the answer tool, forced.
	model = setupModel(t,
		reply("end_turn", 10, 1, textBlock("It is the db pool.")),
		reply("tool_use", 10, 1, toolUse("toolu_1", "answer", `{"cause":"db pool"}`)),
	)
	a = agentAction(model.url)
	a.JSONSchema = causeSchema
	if out, err = newAgentExecution(t, a).exec(t); err != nil || !reflect.DeepEqual(out["json"], map[string]any{"cause": "db pool"}) {
		t.Fatalf("outputs %v, %v", out, err)
	}
	if strings.Contains(model.request(t, 1), "tool_choice") {
		t.Fatalf("request 1 forces a tool: %s", model.request(t, 1))
	}
	wantContains(t, "request 2", model.request(t, 2), `"tool_choice":{"name":"answer","type":"tool"}`, `Give your final answer now with the answer tool.`)

	// An answer off the schema fails for good.
	model = setupModel(t, reply("tool_use", 10, 1, toolUse("toolu_1", "answer", `{"reason":"?"}`)))
	a = agentAction(model.url)
	a.JSONSchema = causeSchema
	_, err = newAgentExecution(t, a).exec(t)
	wantLLMError(t, err, routine.CodeInvalidResponse, false, 0, "agent: the answer does not match json_schema", `missing properties: ["cause"]`)
}

func TestAgentHTTPTool(t *testing.T) {
	t.Parallel()
	var got struct {
		method, body string
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		got.method, got.body = r.Method, string(data)
		w.WriteHeader(404)
		io.WriteString(w, "no ticket s3cr3t-value")
	}))
	t.Cleanup(target.Close)
	model := setupModel(t,
		reply("tool_use", 10, 1, toolUse("toolu_1", "http", fmt.Sprintf(`{"method":"POST","url":%q,"json":{"id":7}}`, target.URL+"/tickets")),
			toolUse("toolu_2", "http", `{"url":"http://127.0.0.1:1/","fail_on":[]}`)),
		reply("end_turn", 10, 1, textBlock("No such ticket.")),
	)
	a := agentAction(model.url)
	a.Tools = []string{"http"}
	b := newAgentExecution(t, a)
	if _, err := b.exec(t); err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.body != `{"id":7}` {
		t.Fatalf("the target got %s %q", got.method, got.body)
	}
	wantContains(t, "request 1", model.request(t, 1), `"name":"http"`, `"required":["url"]`, `"method":{"description":"The method (default GET).","enum":["GET","HEAD","POST","PUT","PATCH","DELETE","OPTIONS"],"type":"string"}`)
	// The status goes back whatever it is, with the run's secrets
	// redacted; a field the tool does not take is an error.
	wantContains(t, "request 2", model.request(t, 2),
		`{"content":[{"text":"{\"status\":404,\"body\":\"no ticket ***\"}","type":"text"}],"is_error":false,"tool_use_id":"toolu_1"`,
		`unknown field \"fail_on\"","type":"text"}],"is_error":true,"tool_use_id":"toolu_2"`)
	if strings.Contains(b.stdout.String(), "s3cr3t-value") {
		t.Fatalf("log %s", b.stdout.String())
	}
}

func TestAgentAnthropicErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("retry-after", "3")
		w.WriteHeader(429)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
	}))
	t.Cleanup(srv.Close)
	_, err := newAgentExecution(t, agentAction(srv.URL)).exec(t)
	wantLLMError(t, err, routine.CodeRateLimited, true, 3*time.Second, "agent: anthropic answered 429: rate_limit_error: slow down")
}

func TestAgentOpenAI(t *testing.T) {
	t.Parallel()
	m := setupMCP(t)
	model := setupModel(t,
		`{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
			{"id":"call_1","type":"function","function":{"name":"logs__search","arguments":"{\"q\":\"timeout\"}"}},
			{"id":"call_2","type":"function","function":{"name":"logs__fail","arguments":"{\"q\":\"x\"}"}}]},
			"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":50,"completion_tokens":5}}`,
		`{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"{\"cause\":\"db pool\"}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":80,"completion_tokens":7}}`,
	)
	a := &routine.AgentAction{
		Provider: routine.LLMProviderOpenAI, Model: "gpt-4o-mini", APIKey: "sk-test", BaseURL: model.url + "/v1",
		Prompt: "Why is api slow?", MCP: []routine.AgentMCPServer{{Name: "logs", URL: m.url}}, JSONSchema: causeSchema,
	}
	out, err := newAgentExecution(t, a).exec(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.calls(); len(got) != 2 || got[0].args != (searchIn{Q: "timeout"}) {
		t.Fatalf("MCP calls %+v", got)
	}
	if model.headers[0].Get("Authorization") != "Bearer sk-test" {
		t.Fatalf("Authorization %q", model.headers[0].Get("Authorization"))
	}
	wantContains(t, "request 1", model.request(t, 1),
		`{"function":{"description":"Search the logs.","name":"logs__search","parameters":{"additionalProperties":false,"properties":{"q":{"description":"what to look for","type":"string"}},"required":["q"],"type":"object"}},"type":"function"}`,
		`"response_format":{"json_schema":{"name":"answer","schema":{"properties":{"cause":{"type":"string"}},"required":["cause"],"type":"object"}},"type":"json_schema"}`)
	wantContains(t, "request 2", model.request(t, 2),
		`{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"q\":\"timeout\"}","name":"logs__search"},"id":"call_1","type":"function"}`,
		`{"content":"3 lines match timeout: db pool exhausted","role":"tool","tool_call_id":"call_1"}`,
		`{"content":"Error: the log store is down","role":"tool","tool_call_id":"call_2"}`)
	if !reflect.DeepEqual(out["json"], map[string]any{"cause": "db pool"}) || out["turns"] != "2" || out["input_tokens"] != "130" || out["output_tokens"] != "12" {
		t.Fatalf("outputs %v", out)
	}
}
