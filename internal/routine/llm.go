package routine

import "time"

// LLMAction asks a language model for one answer: the Anthropic Messages
// API, or the chat completions of any OpenAI-compatible server (OpenAI,
// Ollama, vLLM). With JSONSchema the answer is JSON that the step checks
// against the schema.
type LLMAction struct {
	Provider    string   `yaml:"provider,omitempty" json:"provider,omitempty" template:"-" jsonschema:"enum=anthropic,enum=openai,description=anthropic (the default): the Messages API; openai: any OpenAI-compatible chat completions endpoint (OpenAI\\, Ollama\\, vLLM)."`
	Model       string   `yaml:"model" json:"model" jsonschema:"required,description=The model\\, such as claude-sonnet-4-5 or llama3.2."`
	APIKey      string   `yaml:"api_key,omitempty" json:"api_key,omitempty" jsonschema:"description=The API key\\, as a secret reference such as {{ANTHROPIC_API_KEY}}; required for anthropic\\, optional for local OpenAI-compatible servers."`
	BaseURL     string   `yaml:"base_url,omitempty" json:"base_url,omitempty" jsonschema:"description=The API's base URL (default https://api.anthropic.com or https://api.openai.com/v1)\\, such as http://127.0.0.1:11434/v1 for Ollama."`
	System      string   `yaml:"system,omitempty" json:"system,omitempty" jsonschema:"description=The system prompt."`
	Prompt      string   `yaml:"prompt" json:"prompt" jsonschema:"required,description=The user message."`
	MaxTokens   int      `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty" jsonschema:"minimum=1,maximum=200000,description=Most tokens the answer may have (default 1024)."`
	Temperature *float64 `yaml:"temperature,omitempty" json:"temperature,omitempty" jsonschema:"minimum=0,maximum=2,description=Sampling temperature (default: the provider's)."`
	JSONSchema  any      `yaml:"json_schema,omitempty" json:"json_schema,omitempty" template:"-" jsonschema:"description=A JSON Schema the answer must match: the step asks for JSON\\, checks it and outputs it as json. Not templated."`
	Timeout     Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"description=Bound on one request\\, answer included (default 10m); a timeout may be retried."`
}

// The providers of an llm step.
const (
	LLMProviderAnthropic = "anthropic"
	LLMProviderOpenAI    = "openai"
)

// LLMProviders are the values provider may take.
var LLMProviders = []string{LLMProviderAnthropic, LLMProviderOpenAI}

// Defaults and bounds of an llm step.
const (
	DefaultLLMMaxTokens = 1024
	MaxLLMMaxTokens     = 200000
	DefaultLLMTimeout   = Duration(10 * time.Minute)
)
