package steps

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// llmServer is a provider's API: it records each request and answers
// with the status, headers and body the test gives.
type llmServer struct {
	url    string
	status int
	header map[string]string
	body   string

	path    string
	headers http.Header
	request map[string]any
}

func setupLLM(t *testing.T, status int, body string, header map[string]string) *llmServer {
	t.Helper()
	s := &llmServer{status: status, body: body, header: header}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.path = r.Method + " " + r.URL.Path
		s.headers = r.Header.Clone()
		data, _ := io.ReadAll(r.Body)
		s.request = nil
		if err := json.Unmarshal(data, &s.request); err != nil {
			t.Errorf("request body is not JSON: %v: %s", err, data)
		}
		for k, v := range s.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		io.WriteString(w, s.body)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// execLLM runs an llm action and returns its outputs and what it logged.
func execLLM(t *testing.T, a *routine.LLMAction) (routine.Outputs, string, error) {
	t.Helper()
	var stdout strings.Builder
	res, err := LLMKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "ask", Attempt: 1,
		Action: &routine.Action{LLM: a},
		Dir:    t.TempDir(),
		Stdout: &stdout,
	})
	if err != nil {
		return nil, stdout.String(), err
	}
	wantShape(t, "llm", res.Outputs)
	return res.Outputs, stdout.String(), nil
}

// wantLLMError checks err's code, retryability, wait and message.
func wantLLMError(t *testing.T, err error, code string, retryable bool, after time.Duration, msg ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	c, r, a := stepkind.Describe(err)
	if c != code || r != retryable || a != after {
		t.Fatalf("error %q: code %q retryable %v after %v, want %q %v %v", err, c, r, a, code, retryable, after)
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("error %q lacks %q", err, m)
		}
	}
}

const anthropicText = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
"content":[{"type":"text","text":"It is a billing question."}],
"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":812,"output_tokens":64}}`

func anthropicAction(url string) *routine.LLMAction {
	return &routine.LLMAction{
		Model: "claude-sonnet-4-5", APIKey: "sk-ant-test", BaseURL: url,
		System: "You triage support mail.", Prompt: "Classify: I was charged twice",
	}
}

var labelSchema = map[string]any{
	"type": "object", "required": []any{"label"},
	"properties": map[string]any{"label": map[string]any{"enum": []any{"billing", "technical"}}},
}

func TestLLMAnthropicText(t *testing.T) {
	t.Parallel()
	s := setupLLM(t, 200, anthropicText, nil)
	temp := 0.2
	a := anthropicAction(s.url)
	a.MaxTokens, a.Temperature = 512, &temp
	out, log, err := execLLM(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if s.path != "POST /v1/messages" || s.headers.Get("x-api-key") != "sk-ant-test" || s.headers.Get("anthropic-version") == "" {
		t.Fatalf("request %s with headers %v", s.path, s.headers)
	}
	if s.headers.Get("Authorization") != "" {
		t.Fatalf("Authorization sent to Anthropic: %q", s.headers.Get("Authorization"))
	}
	req, _ := json.Marshal(s.request)
	for _, want := range []string{`"model":"claude-sonnet-4-5"`, `"max_tokens":512`, `"temperature":0.2`,
		`"system":[{"text":"You triage support mail.","type":"text"}]`,
		`"messages":[{"content":[{"text":"Classify: I was charged twice","type":"text"}],"role":"user"}]`} {
		if !strings.Contains(string(req), want) {
			t.Fatalf("request %s lacks %s", req, want)
		}
	}
	if _, ok := s.request["tools"]; ok {
		t.Fatalf("tools sent without json_schema: %s", req)
	}
	want := routine.Outputs{
		"text": "It is a billing question.", "json": nil, "model": "claude-sonnet-4-5-20250929", "stop_reason": "end_turn",
		"input_tokens": "812", "output_tokens": "64", "usage": map[string]any{"input_tokens": 812, "output_tokens": 64},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("outputs %#v, want %#v", out, want)
	}
	if !strings.HasPrefix(log, "claude-sonnet-4-5-20250929: 812 in / 64 out tokens, stop end_turn (") || strings.Contains(log, "charged") || strings.Contains(log, "billing") {
		t.Fatalf("log %q", log)
	}
}

func TestLLMAnthropicDefaults(t *testing.T) {
	t.Parallel()
	s := setupLLM(t, 200, anthropicText, nil)
	a := anthropicAction(s.url)
	a.System = ""
	if _, _, err := execLLM(t, a); err != nil {
		t.Fatal(err)
	}
	if s.request["max_tokens"] != float64(routine.DefaultLLMMaxTokens) {
		t.Fatalf("max_tokens %v", s.request["max_tokens"])
	}
	for _, k := range []string{"system", "temperature", "tools", "tool_choice"} {
		if _, ok := s.request[k]; ok {
			t.Fatalf("request has %s: %v", k, s.request)
		}
	}
}

func TestLLMAnthropicStructured(t *testing.T) {
	t.Parallel()
	answer := func(input string) string {
		return `{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5",
"content":[{"type":"tool_use","id":"toolu_01","name":"answer","input":` + input + `}],
"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":900,"output_tokens":20}}`
	}
	s := setupLLM(t, 200, answer(`{ "label": "billing" }`), nil)
	a := anthropicAction(s.url)
	a.JSONSchema = labelSchema
	out, _, err := execLLM(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["json"], map[string]any{"label": "billing"}) || out["stop_reason"] != "tool_use" {
		t.Fatalf("outputs %v", out)
	}
	tools, _ := json.Marshal(s.request["tools"])
	choice, _ := json.Marshal(s.request["tool_choice"])
	if !strings.Contains(string(tools), `"name":"answer"`) || !strings.Contains(string(tools), `"input_schema":{"properties":{"label":{"enum":["billing","technical"]}},"required":["label"],"type":"object"}`) {
		t.Fatalf("tools %s", tools)
	}
	if string(choice) != `{"name":"answer","type":"tool"}` {
		t.Fatalf("tool_choice %s", choice)
	}

	// A label outside the enum: not retryable, with the validation error
	// and the raw answer.
	s.body = answer(`{"label":"refund"}`)
	_, _, err = execLLM(t, a)
	wantLLMError(t, err, routine.CodeInvalidResponse, false, 0, "does not match json_schema", "validating /properties/label: enum", `{"label":"refund"}`)

	// A text answer instead of the tool.
	s.body = anthropicText
	_, _, err = execLLM(t, a)
	wantLLMError(t, err, routine.CodeInvalidResponse, false, 0, "without calling the answer tool", "It is a billing question.")
}

func TestLLMAnthropicErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		code      string
		retryable bool
		after     time.Duration
		msg       string
	}{
		{"rate limited", 429, map[string]string{"retry-after": "7"}, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			routine.CodeRateLimited, true, 7 * time.Second, "anthropic answered 429: rate_limit_error: Number of request tokens"},
		{"auth", 401, nil, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			routine.CodeAuth, false, 0, "authentication_error: invalid x-api-key"},
		{"forbidden", 403, nil, `{"type":"error","error":{"type":"permission_error","message":"no access to this model"}}`,
			routine.CodeAuth, false, 0, "permission_error"},
		{"overloaded", 529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			routine.CodeHTTPStatus, true, 0, "529: overloaded_error: Overloaded"},
		{"server error", 500, nil, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`,
			routine.CodeHTTPStatus, true, 0, "500: api_error"},
		{"bad request", 400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"model: not found"}}`,
			routine.CodeHTTPStatus, false, 0, "invalid_request_error: model: not found"},
		{"malformed", 200, nil, `{"id":"msg_03","type":"message","content":[`,
			routine.CodeInvalidResponse, false, 0, "anthropic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setupLLM(t, tt.status, tt.body, tt.header)
			_, _, err := execLLM(t, anthropicAction(s.url))
			wantLLMError(t, err, tt.code, tt.retryable, tt.after, tt.msg)
			if strings.Contains(err.Error(), "sk-ant-test") {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
}

func TestLLMTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	for _, provider := range routine.LLMProviders {
		a := anthropicAction(srv.URL)
		a.Provider, a.Timeout = provider, routine.Duration(100*time.Millisecond)
		_, _, err := execLLM(t, a)
		wantLLMError(t, err, routine.CodeTimeout, true, 0, "no answer in time")
	}
}

const openAIText = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",
"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there.","refusal":null},"finish_reason":"stop"}],
"usage":{"prompt_tokens":21,"completion_tokens":3,"total_tokens":24}}`

func TestLLMOpenAIText(t *testing.T) {
	t.Parallel()
	s := setupLLM(t, 200, openAIText, nil)
	out, log, err := execLLM(t, &routine.LLMAction{
		Provider: routine.LLMProviderOpenAI, Model: "gpt-4o-mini", APIKey: "sk-test", BaseURL: s.url + "/v1",
		System: "Be brief.", Prompt: "Say hello", MaxTokens: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.path != "POST /v1/chat/completions" || s.headers.Get("Authorization") != "Bearer sk-test" {
		t.Fatalf("request %s, Authorization %q", s.path, s.headers.Get("Authorization"))
	}
	req, _ := json.Marshal(s.request)
	if string(req) != `{"max_tokens":64,"messages":[{"content":"Be brief.","role":"system"},{"content":"Say hello","role":"user"}],"model":"gpt-4o-mini"}` {
		t.Fatalf("request %s", req)
	}
	if out["text"] != "Hello there." || out["model"] != "gpt-4o-mini-2024-07-18" || out["stop_reason"] != "stop" || out["input_tokens"] != "21" || out["output_tokens"] != "3" || out["json"] != nil {
		t.Fatalf("outputs %v", out)
	}
	if !strings.HasPrefix(log, "gpt-4o-mini-2024-07-18: 21 in / 3 out tokens, stop stop (") {
		t.Fatalf("log %q", log)
	}
}

func TestLLMOpenAIStructured(t *testing.T) {
	t.Parallel()
	answer := func(content string) string {
		c, _ := json.Marshal(content)
		return `{"id":"chatcmpl-2","object":"chat.completion","model":"llama3.2","choices":[{"index":0,"message":{"role":"assistant","content":` + string(c) + `},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":9}}`
	}
	s := setupLLM(t, 200, answer(`{"label": "technical"}`), nil)
	a := &routine.LLMAction{Provider: routine.LLMProviderOpenAI, Model: "llama3.2", BaseURL: s.url + "/v1", Prompt: "Classify", JSONSchema: labelSchema}
	out, _, err := execLLM(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["json"], map[string]any{"label": "technical"}) || out["text"] != `{"label": "technical"}` {
		t.Fatalf("outputs %v", out)
	}
	if s.headers.Get("Authorization") != "" {
		t.Fatalf("Authorization %q without api_key", s.headers.Get("Authorization"))
	}
	rf, _ := json.Marshal(s.request["response_format"])
	if string(rf) != `{"json_schema":{"name":"answer","schema":{"properties":{"label":{"enum":["billing","technical"]}},"required":["label"],"type":"object"}},"type":"json_schema"}` {
		t.Fatalf("response_format %s", rf)
	}
	s.body = answer(`{"kind": "technical"}`)
	_, _, err = execLLM(t, a)
	wantLLMError(t, err, routine.CodeInvalidResponse, false, 0, "does not match json_schema", `missing properties: ["label"]`, `{"kind": "technical"}`)
	s.body = answer(`Sure! The label is technical.`)
	_, _, err = execLLM(t, a)
	wantLLMError(t, err, routine.CodeInvalidResponse, false, 0, "not JSON", "Sure! The label is technical.")
}

func TestLLMOpenAIErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		code      string
		retryable bool
		after     time.Duration
		msg       string
	}{
		{"rate limited", 429, map[string]string{"Retry-After": "2"}, `{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			routine.CodeRateLimited, true, 2 * time.Second, "openai answered 429: requests: Rate limit reached"},
		{"rate limited ms", 429, map[string]string{"retry-after-ms": "1500"}, `{"error":{"message":"slow down","type":"requests"}}`,
			routine.CodeRateLimited, true, 1500 * time.Millisecond, "slow down"},
		{"auth", 401, nil, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`,
			routine.CodeAuth, false, 0, "Incorrect API key provided"},
		{"server error", 503, nil, `{"error":{"message":"The server is overloaded","type":"server_error"}}`,
			routine.CodeHTTPStatus, true, 0, "503: server_error: The server is overloaded"},
		{"not found", 404, nil, `{"error":{"message":"model \"nope\" not found, try pulling it first","type":"api_error"}}`,
			routine.CodeHTTPStatus, false, 0, `model "nope" not found`},
		{"malformed", 200, nil, `<html>proxy</html>`, routine.CodeInvalidResponse, false, 0, "not a chat completion"},
		{"no choices", 200, nil, `{"choices":[]}`, routine.CodeInvalidResponse, false, 0, "no choices"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setupLLM(t, tt.status, tt.body, tt.header)
			_, _, err := execLLM(t, &routine.LLMAction{Provider: routine.LLMProviderOpenAI, Model: "gpt-4o-mini", APIKey: "sk-test", BaseURL: s.url, Prompt: "hi"})
			wantLLMError(t, err, tt.code, tt.retryable, tt.after, tt.msg)
		})
	}
}
