package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// openAIAgentMessage is a message of a chat completions conversation with
// tools: content is null in an assistant message that only calls tools.
type openAIAgentMessage struct {
	Role       string           `json:"role"`
	Content    *string          `json:"content"`
	ToolCalls  []openAIToolCall `json:"tool_calls,omitempty"`
	ToolCallID string           `json:"tool_call_id,omitempty"`
}

type openAIToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type openAIFunction struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Parameters  map[string]any `json:"parameters"`
}

type openAITool struct {
	Type     string         `json:"type"`
	Function openAIFunction `json:"function"`
}

type openAIAgentRequest struct {
	Model          string               `json:"model"`
	Messages       []openAIAgentMessage `json:"messages"`
	MaxTokens      int                  `json:"max_tokens"`
	Temperature    *float64             `json:"temperature,omitempty"`
	Tools          []openAITool         `json:"tools,omitempty"`
	ResponseFormat any                  `json:"response_format,omitempty"`
}

type openAIAgentResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string          `json:"content"`
			Refusal   string           `json:"refusal"`
			ToolCalls []openAIToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// openAIAgentChat is an agent's conversation with an OpenAI-compatible
// chat completions endpoint: the tools are functions, and with
// json_schema every request asks for a final answer in its shape.
type openAIAgentChat struct {
	action     *routine.LLMAction
	req        openAIAgentRequest
	structured bool
}

func newOpenAIAgentChat(a *routine.AgentAction, tools []*agentTool, structured bool) *openAIAgentChat {
	c := &openAIAgentChat{
		action:     a.LLM(),
		structured: structured,
		req:        openAIAgentRequest{Model: a.Model, MaxTokens: a.MaxTokens, Temperature: a.Temperature},
	}
	if c.req.MaxTokens == 0 {
		c.req.MaxTokens = routine.DefaultLLMMaxTokens
	}
	if a.System != "" {
		c.req.Messages = append(c.req.Messages, openAIAgentMessage{Role: "system", Content: &a.System})
	}
	c.req.Messages = append(c.req.Messages, openAIAgentMessage{Role: "user", Content: &a.Prompt})
	for _, t := range tools {
		c.req.Tools = append(c.req.Tools, openAITool{Type: "function", Function: openAIFunction{Name: t.name, Description: t.description, Parameters: t.schema}})
	}
	if structured {
		c.req.ResponseFormat = map[string]any{
			"type":        "json_schema",
			"json_schema": map[string]any{"name": "answer", "schema": a.JSONSchema},
		}
	}
	return c
}

func (c *openAIAgentChat) next(ctx context.Context) (*agentTurn, error) {
	raw, err := openAIPost(ctx, "agent", c.action, c.req)
	if err != nil {
		return nil, err
	}
	var r openAIAgentResponse
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Choices) == 0 {
		if err == nil {
			err = errors.New("no choices")
		}
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("agent: openai: the answer is not a chat completion: %w", err)}
	}
	ch := r.Choices[0]
	m := ch.Message
	if m.Content == nil && len(m.ToolCalls) == 0 {
		what := "no content"
		if m.Refusal != "" {
			what = "a refusal: " + m.Refusal
		}
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("agent: openai answered with %s (finish %s)", what, ch.FinishReason)}
	}
	c.req.Messages = append(c.req.Messages, openAIAgentMessage{Role: "assistant", Content: m.Content, ToolCalls: m.ToolCalls})
	t := &agentTurn{model: r.Model, stopReason: ch.FinishReason, in: r.Usage.PromptTokens, out: r.Usage.CompletionTokens}
	if t.model == "" {
		t.model = c.req.Model
	}
	if m.Content != nil {
		t.text = *m.Content
	}
	for _, tc := range m.ToolCalls {
		t.calls = append(t.calls, agentCall{id: tc.ID, name: tc.Function.Name, input: json.RawMessage(tc.Function.Arguments)})
	}
	if c.structured && len(t.calls) == 0 {
		t.answer, t.hasAnswer = t.text, true
	}
	return t, nil
}

func (c *openAIAgentChat) addResults(results []agentResult) {
	for _, r := range results {
		text := r.text
		if r.isError {
			// Chat completions have no error flag on a tool result.
			text = "Error: " + text
		}
		c.req.Messages = append(c.req.Messages, openAIAgentMessage{Role: "tool", Content: &text, ToolCallID: r.id})
	}
}

// askAnswer implements agentChat: every request already asks for the
// answer's shape.
func (c *openAIAgentChat) askAnswer() bool { return false }
