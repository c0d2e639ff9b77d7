package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// DefaultOpenAIBaseURL is the base URL of provider openai without base_url.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// maxLLMAnswerBytes bounds the answer read from an OpenAI-compatible server.
const maxLLMAnswerBytes = 16 << 20

type openAIMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIRequest struct {
	Model          string          `json:"model"`
	Messages       []openAIMessage `json:"messages"`
	MaxTokens      int             `json:"max_tokens"`
	Temperature    *float64        `json:"temperature,omitempty"`
	ResponseFormat any             `json:"response_format,omitempty"`
}

type openAIResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal string  `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

type openAIError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"error"`
}

// openAIChat sends one chat completions request to an OpenAI-compatible
// server: POST {base_url}/chat/completions, with the key as a bearer
// token when there is one.
func openAIChat(ctx context.Context, req *llmRequest) (*llmAnswer, error) {
	body := openAIRequest{Model: req.Model, MaxTokens: req.MaxTokens, Temperature: req.Temperature}
	if body.MaxTokens == 0 {
		body.MaxTokens = routine.DefaultLLMMaxTokens
	}
	if req.System != "" {
		body.Messages = append(body.Messages, openAIMessage{Role: "system", Content: req.System})
	}
	body.Messages = append(body.Messages, openAIMessage{Role: "user", Content: req.Prompt})
	if req.schema != nil {
		body.ResponseFormat = map[string]any{
			"type":        "json_schema",
			"json_schema": map[string]any{"name": "answer", "schema": req.JSONSchema},
		}
	}
	raw, err := openAIPost(ctx, "llm", req.LLMAction, body)
	if err != nil {
		return nil, err
	}
	var r openAIResponse
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Choices) == 0 {
		if err == nil {
			err = fmt.Errorf("no choices")
		}
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("llm: openai: the answer is not a chat completion: %w", err)}
	}
	c := r.Choices[0]
	if c.Message.Content == nil {
		what := "no content"
		if c.Message.Refusal != "" {
			what = "a refusal: " + c.Message.Refusal
		}
		return nil, &stepkind.Error{Code: routine.CodeInvalidResponse, Err: fmt.Errorf("llm: openai answered with %s (finish %s)", what, c.FinishReason)}
	}
	ans := &llmAnswer{text: *c.Message.Content, model: r.Model, stopReason: c.FinishReason, in: r.Usage.PromptTokens, out: r.Usage.CompletionTokens}
	if ans.model == "" {
		ans.model = req.Model
	}
	return ans, nil
}

// openAIPost posts body to {base_url}/chat/completions of the server a
// step of kind who names, with its key as a bearer token when there is
// one, and returns the body of a 2xx answer; any other answer is the
// step's error.
func openAIPost(ctx context.Context, who string, a *routine.LLMAction, body any) ([]byte, error) {
	base := a.BaseURL
	if base == "" {
		base = DefaultOpenAIBaseURL
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, stepkind.Fail("", false, fmt.Errorf("%s: encode the request: %w", who, err))
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/chat/completions", bytes.NewReader(data))
	if err != nil {
		return nil, stepkind.Fail("", false, fmt.Errorf("%s: base_url %q: %w", who, base, err))
	}
	hr.Header.Set("Content-Type", "application/json")
	if a.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+a.APIKey)
	}
	resp, err := llmHTTPClient.Do(hr)
	if err != nil {
		return nil, llmTransportError(who, "openai", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLLMAnswerBytes))
	if err != nil {
		return nil, llmTransportError(who, "openai", err)
	}
	if resp.StatusCode/100 != 2 {
		var e openAIError
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		if len(msg) > maxRawInError {
			msg = msg[:maxRawInError] + "…"
		}
		return nil, llmStatusError(who, "openai", resp.StatusCode, resp.Header, e.Error.Type, msg)
	}
	return raw, nil
}
