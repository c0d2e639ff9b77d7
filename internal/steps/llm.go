package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/tracing"
)

// LLMKind asks a language model for one answer: Anthropic's Messages API
// through its official SDK, or the chat completions of an
// OpenAI-compatible server over plain HTTP (the official OpenAI SDK would
// add about 18 MB to the binary for one call). Neither client retries:
// the engine does, per the step's retry:.
type LLMKind struct{}

// Name implements Kind.
func (LLMKind) Name() string { return "llm" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (LLMKind) DirFree() {}

var _ stepkind.DirFree = LLMKind{}

// llmRequest is an llm step with its defaults applied and its schema
// compiled.
type llmRequest struct {
	*routine.LLMAction
	schema *spec.JSONSchema
}

// llmAnswer is what a provider answered.
type llmAnswer struct {
	text       string // the text, or the JSON of a structured answer
	model      string
	stopReason string
	in, out    int64
}

// Execute implements Kind. It outputs text, json (the answer as compact
// JSON when json_schema is set), input_tokens, output_tokens, usage (both
// as JSON), model and stop_reason, and logs one line of usage; never the
// prompt or the answer.
// Its Result's Usage counts the bodies of the call and its tokens.
func (LLMKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	return metered(ctx, func(ctx context.Context) (*stepkind.Result, error) { return llmExecute(ctx, x) })
}

func llmExecute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.LLM
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("llm: the step has no llm action"))
	}
	req := &llmRequest{LLMAction: a}
	if a.JSONSchema != nil {
		s, err := spec.CompileJSONSchema(a.JSONSchema)
		if err != nil {
			return nil, stepkind.Fail("", false, fmt.Errorf("llm: json_schema: %w", err))
		}
		req.schema = s
	}
	timeout := a.Timeout.D()
	if timeout <= 0 {
		timeout = routine.DefaultLLMTimeout.D()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var (
		ans *llmAnswer
		err error
	)
	switch a.Provider {
	case "", routine.LLMProviderAnthropic:
		ans, err = anthropicMessage(ctx, req, timeout)
	case routine.LLMProviderOpenAI:
		ans, err = openAIChat(ctx, req)
	default:
		return nil, stepkind.Fail("", false, fmt.Errorf("llm: unknown provider %q", a.Provider))
	}
	if err != nil {
		return nil, err
	}
	countTokens(ctx, ans.model, ans.in, ans.out)
	fmt.Fprintf(x.Stdout, "%s: %d in / %d out tokens, stop %s (%.1f s)\n", ans.model, ans.in, ans.out, ans.stopReason, time.Since(start).Seconds())
	out := routine.Outputs{
		"text":          ans.text,
		"json":          nil,
		"model":         ans.model,
		"stop_reason":   ans.stopReason,
		"input_tokens":  strconv.FormatInt(ans.in, 10),
		"output_tokens": strconv.FormatInt(ans.out, 10),
		"usage":         llmUsage(ans.in, ans.out),
	}
	if req.schema != nil {
		v, err := checkStructured("llm", req.schema, ans)
		if err != nil {
			return nil, err
		}
		out["json"] = v
	}
	return &stepkind.Result{Outputs: out}, nil
}

// maxRawInError caps the answer quoted in the error of a structured
// answer that fails its schema.
const maxRawInError = 2000

// checkStructured checks a structured answer of a step of kind who (llm,
// agent) against the schema and returns it as compact JSON. A mismatch is
// not retryable: the same prompt tends to give the same shape.
func checkStructured(who string, s *spec.JSONSchema, ans *llmAnswer) (any, error) {
	fail := func(err error) (any, error) {
		raw := ans.text
		if len(raw) > maxRawInError {
			raw = raw[:maxRawInError] + "…"
		}
		hint := ""
		if ans.stopReason == "max_tokens" || ans.stopReason == "length" {
			hint = " (the answer was cut at max_tokens: raise it)"
		}
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("%s: the answer %v%s; the answer was: %s", who, err, hint, raw)}
	}
	if err := s.Check([]byte(ans.text)); err != nil {
		return fail(err)
	}
	v, err := routine.DecodeJSON([]byte(ans.text))
	if err != nil {
		return fail(err)
	}
	return v, nil
}

// llmUsage is the usage output: the tokens of the prompt and of the
// answer, as numbers.
func llmUsage(in, out int64) map[string]any {
	return map[string]any{"input_tokens": int(in), "output_tokens": int(out)}
}

// llmHTTPClient is the HTTP client of both providers, each call a client
// span under its step's. The request's context bounds each call, and
// carries the meter of its attempt.
var llmHTTPClient = &http.Client{Transport: tracing.Transport(meteredTransport{base: http.DefaultTransport.(*http.Transport).Clone()})}

// llmStatusError turns a failing HTTP status of a provider into the error
// of a step of kind who (llm, agent): 401 and 403 are auth errors, 429
// rate limits (retryable after the wait asked for), 408, 409, 5xx and
// Anthropic's 529 (overloaded) may succeed on another try, other 4xx will
// not.
func llmStatusError(who, provider string, status int, header http.Header, kind, msg string) error {
	detail := strings.TrimSpace(strings.Join(nonEmpty(kind, msg), ": "))
	if detail == "" {
		detail = http.StatusText(status)
	}
	err := fmt.Errorf("%s: %s answered %d: %s", who, provider, status, detail)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &stepkind.Error{Code: routine.CodeAuth, Err: fmt.Errorf("%w (check api_key)", err)}
	case status == http.StatusTooManyRequests:
		return &stepkind.Error{Code: routine.CodeRateLimited, Retryable: true, After: retryAfter(header), Err: err}
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status >= 500:
		return &stepkind.Error{Code: routine.CodeHTTPStatus, Retryable: true, After: retryAfter(header), Err: err}
	}
	return &stepkind.Error{Code: routine.CodeHTTPStatus, Err: err}
}

// llmTransportError turns an error of the connection (no status) into the
// error of a step of kind who: a timeout, or a connection that failed,
// both retryable.
func llmTransportError(who, provider string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &stepkind.Error{Code: routine.CodeTimeout, Retryable: true, Err: fmt.Errorf("%s: %s: no answer in time: %w", who, provider, err)}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", who, provider, err)
	}
	return &stepkind.Error{Retryable: true, Err: fmt.Errorf("%s: %s: %w", who, provider, err)}
}

// retryAfter reads the wait a server asked for: retry-after-ms (Anthropic,
// OpenAI), else Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := h.Get("Retry-After")
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

var _ stepkind.Kind = LLMKind{}
