package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// anthropicTool is the name of the tool whose input is the structured
// answer: forcing the model to call it is how the Messages API is made to
// answer in the shape of a JSON Schema.
const anthropicTool = "answer"

// anthropicMessage sends one Messages API request. The client reads no
// environment (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL of the engine's
// process): only what the step says.
func anthropicMessage(ctx context.Context, req *llmRequest, timeout time.Duration) (*llmAnswer, error) {
	client := newAnthropicClient(req.LLMAction, timeout)
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = routine.DefaultLLMMaxTokens
	}
	params := anthropic.MessageNewParams{
		Model:     anthropic.Model(req.Model),
		MaxTokens: int64(maxTokens),
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(req.Prompt))},
	}
	if req.System != "" {
		params.System = []anthropic.TextBlockParam{{Text: req.System}}
	}
	var callOpts []option.RequestOption
	if req.Temperature != nil {
		// The SDK's params no longer carry temperature; the API still
		// takes it for the models that support it.
		callOpts = append(callOpts, option.WithJSONSet("temperature", *req.Temperature))
	}
	if req.schema != nil {
		schema, err := toolSchema(req.JSONSchema)
		if err != nil {
			return nil, stepkind.Fail("", false, fmt.Errorf("llm: json_schema: %w", err))
		}
		params.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        anthropicTool,
			Description: anthropic.String("Give the answer, in the shape of the input schema."),
			InputSchema: schema,
		}}}
		params.ToolChoice = anthropic.ToolChoiceParamOfTool(anthropicTool)
	}
	msg, err := client.Messages.New(ctx, params, callOpts...)
	if err != nil {
		return nil, anthropicError(ctx, "llm", err)
	}
	ans := &llmAnswer{model: string(msg.Model), stopReason: string(msg.StopReason), in: msg.Usage.InputTokens, out: msg.Usage.OutputTokens}
	if ans.model == "" {
		ans.model = req.Model
	}
	var texts []string
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			if req.schema != nil && b.Name == anthropicTool {
				ans.text = string(b.Input)
				return ans, nil
			}
		}
	}
	if req.schema != nil {
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("llm: anthropic answered without calling the %s tool (stop %s); the answer was: %s", anthropicTool, ans.stopReason, strings.Join(texts, ""))}
	}
	if msg.Type != "message" || len(msg.Content) > 0 && texts == nil {
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("llm: anthropic: an answer of type %q with no text", msg.Type)}
	}
	ans.text = strings.Join(texts, "")
	return ans, nil
}

// newAnthropicClient returns a client of the Messages API for the key and
// base URL of a step. It reads no environment (ANTHROPIC_API_KEY,
// ANTHROPIC_BASE_URL of the engine's process) and never retries: the
// engine does.
func newAnthropicClient(a *routine.LLMAction, timeout time.Duration) anthropic.Client {
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		// The Messages API's documented header; WithAPIKey would send
		// the key as a bearer token.
		option.WithHeader("x-api-key", a.APIKey),
		option.WithMaxRetries(0),
		option.WithHTTPClient(llmHTTPClient),
		// Set, the SDK does not refuse a large max_tokens without streaming.
		option.WithRequestTimeout(timeout),
	}
	if a.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(a.BaseURL))
	}
	return anthropic.NewClient(opts...)
}

// anthropicError turns an error of a Messages API call into the error of
// a step of kind who: a failing status, a connection that failed, or an
// answer the SDK could not read.
func anthropicError(ctx context.Context, who string, err error) error {
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		return llmStatusError(who, "anthropic", apiErr.StatusCode, apiErr.Response.Header, string(apiErr.Type()), apiErr.Message)
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || ctx.Err() != nil {
		return llmTransportError(who, "anthropic", err)
	}
	return &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("%s: anthropic: the answer is not a Messages API message: %w", who, err)}
}

// toolSchema turns the step's json_schema (an object schema, as the
// validator checked) into a tool's input_schema.
func toolSchema(schema any) (anthropic.ToolInputSchemaParam, error) {
	m, ok := schema.(map[string]any)
	if !ok {
		return anthropic.ToolInputSchemaParam{}, errors.New("the schema is not a mapping")
	}
	extra := make(map[string]any, len(m))
	for k, v := range m {
		if k != "type" {
			extra[k] = v
		}
	}
	return anthropic.ToolInputSchemaParam{ExtraFields: extra}, nil
}
