package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// llm checks an llm: action: a known provider, a model and a prompt,
// max_tokens and temperature in range, an API key that comes from a
// secret (required by Anthropic; local OpenAI-compatible servers take
// none), a base_url that is an http(s) URL, and a json_schema that is a
// JSON Schema of an object. Templates are checked with the others.
func (v *validator) llm(p string, a *routine.LLMAction) {
	provider := a.Provider
	if provider == "" {
		provider = routine.LLMProviderAnthropic
	}
	if !slices.Contains(routine.LLMProviders, provider) {
		v.errorf(p+".provider", "%s.provider must be one of %s, got %q%s", human(p), strings.Join(routine.LLMProviders, ", "), a.Provider, suggest.DidYouMean(a.Provider, routine.LLMProviders))
	}
	if strings.TrimSpace(a.Model) == "" {
		v.errorf(p+".model", "%s needs model: the model to ask, such as claude-sonnet-4-5", human(p))
	}
	if strings.TrimSpace(a.Prompt) == "" {
		v.errorf(p+".prompt", "%s needs prompt: the message to send to the model", human(p))
	}
	if v.given(p+".max_tokens") && (a.MaxTokens < 1 || a.MaxTokens > routine.MaxLLMMaxTokens) {
		v.errorf(p+".max_tokens", "%s.max_tokens must be between 1 and %d, got %d", human(p), routine.MaxLLMMaxTokens, a.MaxTokens)
	}
	if t := a.Temperature; t != nil {
		top := 2.0
		if provider == routine.LLMProviderAnthropic {
			top = 1
		}
		if *t < 0 || *t > top {
			v.errorf(p+".temperature", "%s.temperature must be between 0 and %g for %s, got %g", human(p), top, provider, *t)
		}
	}
	switch {
	case strings.TrimSpace(a.APIKey) == "" && provider == routine.LLMProviderAnthropic:
		v.errorf(p+".api_key", "%s needs api_key: the Anthropic API key, as a secret reference such as \"{{ANTHROPIC_API_KEY}}\"", human(p))
	case strings.TrimSpace(a.APIKey) != "" && !namesSecret(a.APIKey):
		v.errorf(p+".api_key", "%s.api_key must come from a secret, not be written in the file: declare one (secrets: [ANTHROPIC_API_KEY]) and write api_key: \"{{ANTHROPIC_API_KEY}}\"", human(p))
	}
	if u := a.BaseURL; u != "" && !strings.Contains(u, "{{") {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			v.errorf(p+".base_url", "%s.base_url must be an http:// or https:// URL, got %q", human(p), u)
		}
	}
	v.positive(p+".timeout", a.Timeout)
	if a.JSONSchema != nil {
		if _, err := CompileJSONSchema(a.JSONSchema); err != nil {
			v.errorf(p+".json_schema", "%s.json_schema: %v", human(p), err)
		}
	}
}

// JSONSchema is the compiled json_schema of an llm step.
type JSONSchema struct{ s *jsonschema.Resolved }

// CompileJSONSchema compiles the json_schema of an llm step, as decoded
// from YAML, and checks that it describes a JSON object: the shape both
// providers can be made to answer in. A $ref may point inside the schema
// only; nothing is loaded from files or the network.
func CompileJSONSchema(schema any) (*JSONSchema, error) {
	m, ok := schema.(map[string]any)
	if !ok {
		return nil, errors.New("a JSON Schema is a mapping, such as {type: object, properties: {label: {type: string}}}")
	}
	if m["type"] != "object" {
		return nil, errors.New("the schema must describe an object (type: object at the top), with the values under properties")
	}
	data, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	var sch jsonschema.Schema
	if err := json.Unmarshal(data, &sch); err != nil {
		return nil, fmt.Errorf("not a valid JSON Schema: %s", oneLine(err))
	}
	// Without a Loader, a $ref outside the schema is refused.
	rs, err := sch.Resolve(&jsonschema.ResolveOptions{})
	if err != nil {
		return nil, fmt.Errorf("not a valid JSON Schema (a json_schema may refer only to itself, #/$defs/…): %s", oneLine(err))
	}
	return &JSONSchema{s: rs}, nil
}

// Check parses data as JSON and validates it against the schema. Its
// error says, on one line, what does not match.
func (s *JSONSchema) Check(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.s.Validate(v); err != nil {
		return fmt.Errorf("does not match json_schema: %s", oneLine(err))
	}
	return nil
}

// oneLine puts an error of the JSON Schema library on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
