package routine

import "time"

// AgentAction lets a language model work in a bounded loop of tool calls:
// it may call the tools of the MCP servers the step declares and the step
// kinds of its Tools allow-list, and the step ends when the model answers
// without a tool call. Its model settings are those of an llm step.
type AgentAction struct {
	Provider    string           `yaml:"provider,omitempty" json:"provider,omitempty" template:"-" jsonschema:"enum=anthropic,enum=openai,description=anthropic (the default): the Messages API; openai: any OpenAI-compatible chat completions endpoint with tool calls."`
	Model       string           `yaml:"model" json:"model" jsonschema:"required,description=The model\\, such as claude-sonnet-4-5; it must support tool use."`
	APIKey      string           `yaml:"api_key,omitempty" json:"api_key,omitempty" jsonschema:"description=The API key\\, as a secret reference such as {{ANTHROPIC_API_KEY}}; required for anthropic\\, optional for local OpenAI-compatible servers."`
	BaseURL     string           `yaml:"base_url,omitempty" json:"base_url,omitempty" jsonschema:"description=The API's base URL (default https://api.anthropic.com or https://api.openai.com/v1)."`
	System      string           `yaml:"system,omitempty" json:"system,omitempty" jsonschema:"description=The system prompt."`
	Prompt      string           `yaml:"prompt" json:"prompt" jsonschema:"required,description=The task: the first user message."`
	MaxTurns    int              `yaml:"max_turns,omitempty" json:"max_turns,omitempty" jsonschema:"minimum=1,maximum=50,description=Most model calls (default 10); the step fails when the model still calls tools after them."`
	MaxTokens   int              `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty" jsonschema:"minimum=1,maximum=200000,description=Most tokens of each model answer (default 1024)."`
	Temperature *float64         `yaml:"temperature,omitempty" json:"temperature,omitempty" jsonschema:"minimum=0,maximum=2,description=Sampling temperature (default: the provider's)."`
	Timeout     Duration         `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"description=Bound on the whole loop\\, model calls and tool calls (default 5m)."`
	MCP         []AgentMCPServer `yaml:"mcp,omitempty" json:"mcp,omitempty" jsonschema:"description=MCP servers whose tools the model may call\\, named <server>__<tool>."`
	Tools       []string         `yaml:"tools,omitempty" json:"tools,omitempty" template:"-" jsonschema:"enum=http,description=Step kinds the model may call as tools\\, with the kind's fields as the tool's input: http."`
	JSONSchema  any              `yaml:"json_schema,omitempty" json:"json_schema,omitempty" template:"-" jsonschema:"description=A JSON Schema of the final answer: the step asks for it as JSON\\, checks it and outputs it as json. Not templated."`
}

// AgentMCPServer is an MCP server of an agent step: one reached over
// streamable HTTP at URL, or one started as Command and spoken to over
// its stdin and stdout.
type AgentMCPServer struct {
	Name    string            `yaml:"name" json:"name" template:"-" jsonschema:"required,pattern=^[a-z0-9_-]+$,description=The server's name: the prefix of its tools (<name>__<tool>)."`
	URL     string            `yaml:"url,omitempty" json:"url,omitempty" jsonschema:"description=The server's streamable HTTP endpoint\\, such as http://127.0.0.1:8931/mcp. One of url and command."`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty" jsonschema:"description=Headers sent with every request to url\\, such as Authorization: Bearer {{CRM_TOKEN}}."`
	Command []string          `yaml:"command,omitempty" json:"command,omitempty" jsonschema:"description=The program and its arguments\\, started in the routine directory in the sandbox\\, speaking MCP over stdio. One of url and command."`
}

// LLM returns the model settings of the agent as those of an llm step,
// which are checked and sent the same way.
func (a *AgentAction) LLM() *LLMAction {
	return &LLMAction{
		Provider: a.Provider, Model: a.Model, APIKey: a.APIKey, BaseURL: a.BaseURL,
		System: a.System, Prompt: a.Prompt, MaxTokens: a.MaxTokens, Temperature: a.Temperature,
		JSONSchema: a.JSONSchema, Timeout: a.Timeout,
	}
}

// AgentTools are the step kinds an agent step may offer the model as tools.
var AgentTools = []string{"http"}

// Defaults and bounds of an agent step.
const (
	DefaultAgentMaxTurns = 10
	MaxAgentMaxTurns     = 50
	DefaultAgentTimeout  = Duration(5 * time.Minute)
)

// CodeLimitReached is the error code of an agent step whose model had not
// given its final answer when max_turns or the step's agent timeout ran
// out. Another try would spend the same budget, so it is not retryable.
const CodeLimitReached = "limit_reached"
