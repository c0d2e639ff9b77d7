package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// anthropicAgentChat is an agent's conversation with the Messages API.
// With json_schema the model gets one more tool, answer, whose input is
// the final answer; a model that ends without it is asked for it once,
// with tool_choice forcing it.
type anthropicAgentChat struct {
	// send is the client's Messages.New. Keeping the client itself in a
	// type that reaches an interface would make the type of every service
	// of the SDK, with all their methods, part of the binary (some 12 MB).
	send       func(context.Context, anthropic.MessageNewParams, ...option.RequestOption) (*anthropic.Message, error)
	params     anthropic.MessageNewParams
	callOpts   []option.RequestOption
	structured bool
	force      bool
	asked      bool
}

func newAnthropicAgentChat(a *routine.AgentAction, tools []*agentTool, structured bool, timeout time.Duration) (*anthropicAgentChat, error) {
	maxTokens := a.MaxTokens
	if maxTokens == 0 {
		maxTokens = routine.DefaultLLMMaxTokens
	}
	client := newAnthropicClient(a.LLM(), timeout)
	c := &anthropicAgentChat{
		send: client.Messages.New,
		params: anthropic.MessageNewParams{
			Model:     anthropic.Model(a.Model),
			MaxTokens: int64(maxTokens),
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(a.Prompt))},
		},
		structured: structured,
	}
	if a.System != "" {
		c.params.System = []anthropic.TextBlockParam{{Text: a.System}}
	}
	if a.Temperature != nil {
		c.callOpts = append(c.callOpts, option.WithJSONSet("temperature", *a.Temperature))
	}
	for _, t := range tools {
		schema, err := toolSchema(t.schema)
		if err != nil {
			return nil, stepkind.Fail("", false, fmt.Errorf("agent: tool %s: input schema: %w", t.name, err))
		}
		tool := &anthropic.ToolParam{Name: t.name, InputSchema: schema}
		if t.description != "" {
			tool.Description = anthropic.String(t.description)
		}
		c.params.Tools = append(c.params.Tools, anthropic.ToolUnionParam{OfTool: tool})
	}
	if structured {
		schema, err := toolSchema(a.JSONSchema)
		if err != nil {
			return nil, stepkind.Fail("", false, fmt.Errorf("agent: json_schema: %w", err))
		}
		c.params.Tools = append(c.params.Tools, anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
			Name:        anthropicTool,
			Description: anthropic.String("Give the final answer, in the shape of the input schema, once the task is done."),
			InputSchema: schema,
		}})
	}
	return c, nil
}

func (c *anthropicAgentChat) next(ctx context.Context) (*agentTurn, error) {
	params := c.params
	if c.force {
		params.ToolChoice = anthropic.ToolChoiceParamOfTool(anthropicTool)
		c.force = false
	}
	msg, err := c.send(ctx, params, c.callOpts...)
	if err != nil {
		return nil, anthropicError(ctx, "agent", err)
	}
	if msg.Type != "message" {
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("agent: anthropic: an answer of type %q", msg.Type)}
	}
	c.params.Messages = append(c.params.Messages, msg.ToParam())
	t := &agentTurn{model: string(msg.Model), stopReason: string(msg.StopReason), in: msg.Usage.InputTokens, out: msg.Usage.OutputTokens}
	if t.model == "" {
		t.model = string(c.params.Model)
	}
	var texts []string
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			if c.structured && b.Name == anthropicTool {
				t.answer, t.hasAnswer = string(b.Input), true
				continue
			}
			t.calls = append(t.calls, agentCall{id: b.ID, name: b.Name, input: b.Input})
		}
	}
	t.text = strings.Join(texts, "")
	return t, nil
}

func (c *anthropicAgentChat) addResults(results []agentResult) {
	blocks := make([]anthropic.ContentBlockParamUnion, len(results))
	for i, r := range results {
		blocks[i] = anthropic.NewToolResultBlock(r.id, r.text, r.isError)
	}
	c.params.Messages = append(c.params.Messages, anthropic.NewUserMessage(blocks...))
}

func (c *anthropicAgentChat) askAnswer() bool {
	if c.asked {
		return false
	}
	c.asked = true
	c.params.Messages = append(c.params.Messages, anthropic.NewUserMessage(anthropic.NewTextBlock("Give your final answer now with the "+anthropicTool+" tool.")))
	c.force = true
	return true
}
