package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
)

// AgentKind lets a language model work through a task in a bounded loop:
// each turn is one model call (Anthropic's Messages API or an
// OpenAI-compatible chat completions endpoint, as the llm kind sends
// them); each tool call of an answer runs a tool of the step's MCP servers
// or a step kind of its tools: allow-list, and its result goes back to the
// model; the step ends when the model answers without a tool call. Tool
// failures are the model's to handle; a model call that fails, an MCP
// server that cannot be reached, or max_turns or the agent timeout running
// out fail the step.
type AgentKind struct{}

// Name implements Kind.
func (AgentKind) Name() string { return "agent" }

// agentTool is a tool offered to the model.
type agentTool struct {
	name        string
	description string
	schema      map[string]any // JSON Schema of the input: an object
	// call runs the tool with the model's input and returns the result's
	// text and whether it is an error for the model to see; an error
	// fails the step.
	call func(ctx context.Context, input json.RawMessage) (text string, isError bool, err error)
}

// agentCall is one tool call the model asked for.
type agentCall struct {
	id, name string
	input    json.RawMessage
}

// agentResult is the result of a tool call, for the model.
type agentResult struct {
	id, name string
	text     string
	isError  bool
}

// agentTurn is one answer of the model.
type agentTurn struct {
	text  string
	calls []agentCall
	// answer is the structured final answer, when json_schema is set and
	// the model gave it.
	answer     string
	hasAnswer  bool
	model      string
	stopReason string
	in, out    int64
}

// agentChat is a conversation with a provider: next sends it and adds the
// model's answer to it, addResults adds the results of the answer's tool
// calls, and askAnswer adds a request for the structured final answer,
// when the provider needs one, reporting whether it did.
type agentChat interface {
	next(ctx context.Context) (*agentTurn, error)
	addResults(results []agentResult)
	askAnswer() bool
}

// agentCallRecord is an entry of the tool_calls output.
type agentCallRecord struct {
	Tool  string          `json:"tool"`
	Input json.RawMessage `json:"input"`
	OK    bool            `json:"ok"`
	MS    int64           `json:"ms"`
}

// Bounds of what an agent step logs and sends.
const (
	// agentLogChars caps the input and the result a log line shows.
	agentLogChars = 200
	// agentMaxResult caps the text of one tool result sent to the model.
	agentMaxResult = 64 << 10
)

// Execute implements Kind. It outputs text (the final answer), json (the
// final answer as compact JSON when json_schema is set), turns (model
// calls), tool_calls (a JSON array of {tool, input, ok, ms}),
// input_tokens, output_tokens and usage (summed over the turns), model
// and stop_reason (of the last turn). It logs a line per model call and
// one per tool call, with the input and the start of the result; never
// the API key.
//
// Its Result's Usage counts the bodies of its calls to the model and to
// MCP servers over HTTP, and the tokens of every turn.
func (AgentKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	return metered(ctx, func(ctx context.Context) (*stepkind.Result, error) { return agentExecute(ctx, x) })
}

func agentExecute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Agent
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("agent: the step has no agent action"))
	}
	var schema *spec.JSONSchema
	if a.JSONSchema != nil {
		s, err := spec.CompileJSONSchema(a.JSONSchema)
		if err != nil {
			return nil, stepkind.Fail("", false, fmt.Errorf("agent: json_schema: %w", err))
		}
		schema = s
	}
	maxTurns := a.MaxTurns
	if maxTurns <= 0 {
		maxTurns = routine.DefaultAgentMaxTurns
	}
	timeout := a.Timeout.D()
	if timeout <= 0 {
		timeout = routine.DefaultAgentTimeout.D()
	}
	loopCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		turns   int
		in, out int64
		records = []agentCallRecord{}
	)
	// bounded turns an error of the loop into the limit error when the
	// agent's timeout ran out; the step's own timeout and the run's
	// cancellation are the engine's to report.
	bounded := func(err error) error {
		if loopCtx.Err() != nil && ctx.Err() == nil {
			return &stepkind.Error{Code: routine.CodeLimitReached, Err: fmt.Errorf("agent: no final answer within the agent timeout of %s (%d model calls, %d tool calls): raise timeout or narrow the task", timeout, turns, len(records))}
		}
		return err
	}

	box, err := openToolbox(loopCtx, x, a)
	defer box.close()
	if err != nil {
		return nil, bounded(err)
	}
	var chat agentChat
	switch a.Provider {
	case "", routine.LLMProviderAnthropic:
		chat, err = newAnthropicAgentChat(a, box.tools, schema != nil, timeout)
	case routine.LLMProviderOpenAI:
		chat = newOpenAIAgentChat(a, box.tools, schema != nil)
	default:
		err = stepkind.Fail("", false, fmt.Errorf("agent: unknown provider %q", a.Provider))
	}
	if err != nil {
		return nil, err
	}

	limit := func() error {
		return &stepkind.Error{Code: routine.CodeLimitReached, Err: fmt.Errorf("agent: no final answer after max_turns (%d model calls, %d tool calls): the model still wanted to call tools; raise max_turns or narrow the task", maxTurns, len(records))}
	}
	var last *agentTurn
	for {
		turns++
		start := time.Now()
		t, err := chat.next(loopCtx)
		if err != nil {
			return nil, bounded(err)
		}
		last = t
		in, out = in+t.in, out+t.out
		countTokens(ctx, t.model, t.in, t.out)
		fmt.Fprintf(x.Stdout, "turn %d: %s: %d in / %d out tokens, stop %s (%.1f s)\n", turns, t.model, t.in, t.out, t.stopReason, time.Since(start).Seconds())
		if t.hasAnswer {
			break
		}
		if len(t.calls) == 0 {
			if schema == nil || turns == maxTurns || !chat.askAnswer() {
				break
			}
			continue
		}
		if turns == maxTurns {
			// The calls would be run for nothing: no turn is left to
			// read their results.
			return nil, limit()
		}
		results := make([]agentResult, 0, len(t.calls))
		for _, c := range t.calls {
			res, rec, err := box.run(loopCtx, x, c)
			if err != nil {
				return nil, bounded(err)
			}
			results = append(results, res)
			records = append(records, rec)
		}
		chat.addResults(results)
	}

	calls, err := structured(records)
	if err != nil {
		return nil, fmt.Errorf("agent: encode tool_calls: %w", err)
	}
	outputs := routine.Outputs{
		"text":          last.text,
		"json":          nil,
		"turns":         strconv.Itoa(turns),
		"tool_calls":    calls,
		"model":         last.model,
		"stop_reason":   last.stopReason,
		"input_tokens":  strconv.FormatInt(in, 10),
		"output_tokens": strconv.FormatInt(out, 10),
		"usage":         llmUsage(in, out),
	}
	if schema != nil {
		answer := last.text
		if last.hasAnswer {
			answer = last.answer
		}
		v, err := checkStructured("agent", schema, &llmAnswer{text: answer, stopReason: last.stopReason})
		if err != nil {
			return nil, err
		}
		outputs["text"], outputs["json"] = answer, v
	}
	return &stepkind.Result{Outputs: outputs}, nil
}

// run runs one tool call of the model, logs it, and returns its result for
// the model and its record for tool_calls. Only a failure that should fail
// the step (an MCP server gone, the step's time up) is an error.
func (b *toolbox) run(ctx context.Context, x *stepkind.Execution, c agentCall) (agentResult, agentCallRecord, error) {
	input := c.input
	if len(bytes.TrimSpace(input)) == 0 || string(bytes.TrimSpace(input)) == "null" {
		input = json.RawMessage(`{}`)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, input); err == nil {
		input = compact.Bytes()
	}
	res := agentResult{id: c.id, name: c.name}
	start := time.Now()
	var err error
	if t := b.byName[c.name]; t == nil {
		res.text, res.isError = fmt.Sprintf("there is no tool %q; the tools are: %s", c.name, strings.Join(b.names(), ", ")), true
	} else if !json.Valid(input) {
		res.text, res.isError = "the tool's input is not JSON: "+truncate(string(input), agentLogChars), true
	} else {
		res.text, res.isError, err = t.call(ctx, input)
	}
	ms := time.Since(start).Milliseconds()
	if err != nil {
		fmt.Fprintf(x.Stdout, "tool %s %s → failed (%d ms)\n", c.name, logSnippet(string(input)), ms)
		return res, agentCallRecord{}, err
	}
	if x.Redact != nil {
		// Tool results go to the model's provider: no secret goes with them.
		res.text = x.Redact(res.text)
	}
	if len(res.text) > agentMaxResult {
		res.text = res.text[:agentMaxResult] + fmt.Sprintf("… (cut: the result has %d bytes)", len(res.text))
	}
	outcome := httpByteCount(len(res.text))
	if res.isError {
		outcome = "error"
	}
	fmt.Fprintf(x.Stdout, "tool %s %s → %s (%d ms): %s\n", c.name, logSnippet(string(input)), outcome, ms, logSnippet(res.text))
	if !json.Valid(input) {
		// Kept as the text it was, so that tool_calls stays JSON.
		input, _ = json.Marshal(string(input))
	}
	return res, agentCallRecord{Tool: c.name, Input: input, OK: !res.isError, MS: ms}, nil
}

// logSnippet is s on one line, cut at agentLogChars characters.
func logSnippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > agentLogChars {
		return string(r[:agentLogChars]) + "…"
	}
	return s
}

var _ stepkind.Kind = AgentKind{}
