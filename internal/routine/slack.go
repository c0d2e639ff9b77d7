package routine

// SlackAction posts a message to a Slack channel with chat.postMessage.
// Every string, and every string inside Blocks, is a template.
type SlackAction struct {
	Token    string `yaml:"token" json:"token" jsonschema:"required,description=Bot token (xoxb-…); write it as a secret reference such as {{SLACK_BOT_TOKEN}}."`
	Channel  string `yaml:"channel" json:"channel" jsonschema:"required,description=Channel name (#support) or id (C0123…) to post to."`
	Text     string `yaml:"text,omitempty" json:"text,omitempty" jsonschema:"description=Text of the message; with blocks\\, the fallback shown in notifications."`
	Blocks   any    `yaml:"blocks,omitempty" json:"blocks,omitempty" jsonschema:"description=Block Kit blocks\\, written as YAML; their strings are templates."`
	ThreadTS string `yaml:"thread_ts,omitempty" json:"thread_ts,omitempty" jsonschema:"description=ts of the message to reply to in its thread\\, such as {{ steps.first.outputs.ts }}."`
	BaseURL  string `yaml:"base_url,omitempty" json:"base_url,omitempty" jsonschema:"description=Slack Web API URL (default https://slack.com/api/)."`
}

// DefaultSlackAPIURL is the Web API a slack step posts to without base_url.
const DefaultSlackAPIURL = "https://slack.com/api/"

// SlackCommandTrigger starts a run on a Slack slash command that the
// daemon receives at POST /slack/commands.
type SlackCommandTrigger struct {
	Command       string `yaml:"command" json:"command" jsonschema:"required,pattern=^/,description=The slash command\\, such as /triage; one routine per command."`
	SigningSecret string `yaml:"signing_secret" json:"signing_secret" jsonschema:"required,description=The Slack app's signing secret\\, as a secret reference such as {{SLACK_SIGNING_SECRET}}."`
	Reply         string `yaml:"reply,omitempty" json:"reply,omitempty" jsonschema:"description=Ephemeral answer shown to the user who typed the command (a template over event; default: Queued run <id>)."`
}
