package routine

import "fmt"

// Step is one entry of steps: or on_failure:. Exactly one step kind is set
// (one of the pointer fields of Action, or run). Kinds land as fields of
// Action, so compensate: takes any of them.
type Step struct {
	ID         string     `yaml:"id" json:"id" jsonschema:"pattern=^[a-z_][a-z0-9_-]*$,description=Unique id of the step\\, used in needs and steps.<id>.outputs."`
	Name       string     `yaml:"name,omitempty" json:"name,omitempty"`
	If         string     `yaml:"if,omitempty" json:"if,omitempty" jsonschema:"description=A bare expression; the step is skipped when it is false."`
	Needs      *[]string  `yaml:"needs,omitempty" json:"needs,omitempty" jsonschema:"description=Steps this one waits for; [] waits for none. Without it a step waits for the one before it."`
	Retry      *Retry     `yaml:"retry,omitempty" json:"retry,omitempty"`
	Resources  *Resources `yaml:"resources,omitempty" json:"resources,omitempty" jsonschema:"description=Limits of this step's processes\\, overriding the routine's resources field by field."`
	Artifacts  []string   `yaml:"artifacts,omitempty" json:"artifacts,omitempty" jsonschema:"description=Files (relative to the step's workdir) kept as artifacts of this step after it succeeds."`
	Compensate *Action    `yaml:"compensate,omitempty" json:"compensate,omitempty" jsonschema:"description=Undo action run\\, in reverse order\\, for completed steps when the run fails."`
	Action     `yaml:",inline"`
}

// Action is the body of a step: what it does, without its place in the run.
// Its strings, and those of each kind's struct, are templates rendered when
// the step runs, but for the fields tagged template:"-" (template.MapStrings).
type Action struct {
	Run      string            `yaml:"run,omitempty" json:"run,omitempty" jsonschema:"description=A shell line or a script path\\, run in the sandbox with cwd = the routine directory."`
	Shell    string            `yaml:"shell,omitempty" json:"shell,omitempty" template:"-" jsonschema:"enum=bash,enum=sh,description=Shell for run (default bash -eo pipefail)."`
	Workdir  string            `yaml:"workdir,omitempty" json:"workdir,omitempty" jsonschema:"description=Working directory of run\\, relative to the routine directory."`
	Env      map[string]string `yaml:"env,omitempty" json:"env,omitempty" template:"-"` // rendered in layers: the routine's, then the step's
	Timeout  Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	State    *StateAction      `yaml:"state,omitempty" json:"state,omitempty" jsonschema:"description=Get\\, put or delete a key of the routine's own persistent key/value store."`
	Emit     *EmitAction       `yaml:"emit,omitempty" json:"emit,omitempty" jsonschema:"description=Publish an event: every routine with a matching event trigger gets a run."`
	SQL      *SQLAction        `yaml:"sql,omitempty" json:"sql,omitempty" jsonschema:"description=Run SQL on a SQLite file of the routine or a PostgreSQL database\\, with values bound from params."`
	Routine  *RoutineAction    `yaml:"routine,omitempty" json:"routine,omitempty" jsonschema:"description=Call another routine of the project and wait for it; outputs its steps' outputs\\, run_id and state."`
	Email    *EmailAction      `yaml:"email,omitempty" json:"email,omitempty" jsonschema:"description=Send an email over SMTP; outputs message_id and accepted."`
	HTTP     *HTTPAction       `yaml:"http,omitempty" json:"http,omitempty" jsonschema:"description=Send an HTTP request; outputs status\\, headers\\, body and json."`
	Slack    *SlackAction      `yaml:"slack,omitempty" json:"slack,omitempty" jsonschema:"description=Post a message to a Slack channel (chat.postMessage)."`
	LLM      *LLMAction        `yaml:"llm,omitempty" json:"llm,omitempty" jsonschema:"description=Ask a language model (Anthropic\\, or any OpenAI-compatible endpoint); outputs text\\, json and token usage."`
	Classify *ClassifyAction   `yaml:"classify,omitempty" json:"classify,omitempty" jsonschema:"description=Label a text with a small classifier trained from labelled examples; outputs label\\, confidence and scores."`
	Agent    *AgentAction      `yaml:"agent,omitempty" json:"agent,omitempty" jsonschema:"description=Let a language model call tools (of MCP servers\\, and http) in a bounded loop; outputs text\\, json\\, turns\\, tool_calls and token usage."`
}

// SQLAction runs one or more SQL statements, in one transaction, on a
// SQLite file or a PostgreSQL database. Query is never rendered: values
// reach the SQL only as the bound Params of its last statement, so no
// rendered text can change what the statement does. DB is not rendered
// either: the sql step itself reads the one secret it may name.
type SQLAction struct {
	DB     string   `yaml:"db,omitempty" json:"db,omitempty" template:"-" jsonschema:"description=The SQLite file\\, relative to the routine directory or absolute under permissions.write; created if missing (default routine.db). Or one reference to a declared secret holding a postgres:// URL\\, such as {{DATABASE_URL}}. Not templated otherwise."`
	Query  string   `yaml:"query" json:"query" template:"-" jsonschema:"required,description=The SQL: one statement\\, or several separated by ; run in one transaction. Not templated: use ? (SQLite) or $1\\, $2 … (PostgreSQL) and params."`
	Params []string `yaml:"params,omitempty" json:"params,omitempty" jsonschema:"description=Values bound\\, in order\\, to the placeholders of the last statement; templates. Bound as text\\, which the column's type converts."`
}

// DefaultSQLDB is the SQLite file of a sql step that names none.
const DefaultSQLDB = "routine.db"

// Kind returns the name of the step kind the action uses, or "" when none is set.
func (a *Action) Kind() string {
	switch {
	case a.Run != "":
		return "run"
	case a.State != nil:
		return "state"
	case a.Emit != nil:
		return "emit"
	case a.SQL != nil:
		return "sql"
	case a.Routine != nil:
		return "routine"
	case a.Email != nil:
		return "email"
	case a.HTTP != nil:
		return "http"
	case a.Slack != nil:
		return "slack"
	case a.LLM != nil:
		return "llm"
	case a.Classify != nil:
		return "classify"
	case a.Agent != nil:
		return "agent"
	}
	return ""
}

// NeedsList returns the ids the step waits for and whether needs: was given.
func (s *Step) NeedsList() ([]string, bool) {
	if s.Needs == nil {
		return nil, false
	}
	return *s.Needs, true
}

// Backoff names how retry delays grow.
type Backoff string

// The backoff policies.
const (
	BackoffExponential Backoff = "exponential"
	BackoffLinear      Backoff = "linear"
	BackoffConstant    Backoff = "constant"
)

// Retry says how often a failed step is tried again and how long to wait.
type Retry struct {
	Attempts int      `yaml:"attempts,omitempty" json:"attempts,omitempty" jsonschema:"minimum=1,description=Total tries including the first (default 1)."`
	Backoff  Backoff  `yaml:"backoff,omitempty" json:"backoff,omitempty" jsonschema:"enum=exponential,enum=linear,enum=constant"`
	Initial  Duration `yaml:"initial,omitempty" json:"initial,omitempty" jsonschema:"description=First delay (default 1s)."`
	Max      Duration `yaml:"max,omitempty" json:"max,omitempty" jsonschema:"description=Cap on one delay (default 1m)."`
	Jitter   *bool    `yaml:"jitter,omitempty" json:"jitter,omitempty" jsonschema:"description=Full jitter: wait a random time up to the delay (default true)."`
}

// Trigger is one entry of triggers:. Exactly one kind is set.
type Trigger struct {
	Cron         string               `yaml:"cron,omitempty" json:"cron,omitempty" jsonschema:"description=Cron expression: 5 fields\\, or 6 with seconds first."`
	Timezone     string               `yaml:"timezone,omitempty" json:"timezone,omitempty" jsonschema:"description=IANA time zone of cron (default UTC)."`
	Overlap      string               `yaml:"overlap,omitempty" json:"overlap,omitempty" jsonschema:"enum=skip,enum=queue,enum=allow"`
	Catchup      string               `yaml:"catchup,omitempty" json:"catchup,omitempty" jsonschema:"enum=none,enum=one"`
	Every        Duration             `yaml:"every,omitempty" json:"every,omitempty"`
	Webhook      *WebhookTrigger      `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	File         *FileTrigger         `yaml:"file,omitempty" json:"file,omitempty"`
	Event        *EventTrigger        `yaml:"event,omitempty" json:"event,omitempty"`
	SlackCommand *SlackCommandTrigger `yaml:"slack_command,omitempty" json:"slack_command,omitempty" jsonschema:"description=A Slack slash command\\, received at POST /slack/commands."`
	Email        *EmailTrigger        `yaml:"email,omitempty" json:"email,omitempty" jsonschema:"description=New messages of an IMAP mailbox\\, one run each."`
}

// Kind returns the trigger kind that is set, or "".
func (t *Trigger) Kind() string {
	switch {
	case t.Cron != "":
		return "cron"
	case t.Every != 0:
		return "every"
	case t.Webhook != nil:
		return "webhook"
	case t.File != nil:
		return "file"
	case t.Event != nil:
		return "event"
	case t.Email != nil:
		return "email"
	case t.SlackCommand != nil:
		return "slack_command"
	}
	return ""
}

// Describe writes the trigger in one short phrase, as `routines status`
// and GET /v1/routines show it, such as `cron "0 9 * * *" Europe/Paris`.
func (t *Trigger) Describe() string {
	switch {
	case t.Cron != "":
		s := fmt.Sprintf("cron %q", t.Cron)
		if t.Timezone != "" {
			s += " " + t.Timezone
		}
		return s
	case t.Every != 0:
		return "every " + t.Every.String()
	case t.Webhook != nil:
		return "webhook POST /hooks" + t.Webhook.Path
	case t.File != nil:
		return "file " + t.File.Path
	case t.Event != nil:
		return "event " + t.Event.Name
	case t.SlackCommand != nil:
		return "slack " + t.SlackCommand.Command
	case t.Email != nil:
		return "email " + t.Email.Mailbox
	}
	return t.Kind()
}

// WebhookTrigger starts a run on POST /hooks/<path>.
type WebhookTrigger struct {
	Path     string   `yaml:"path" json:"path"`
	Secret   string   `yaml:"secret,omitempty" json:"secret,omitempty" jsonschema:"description=HMAC-SHA256 key of the body signature."`
	Provider string   `yaml:"provider,omitempty" json:"provider,omitempty" jsonschema:"enum=github"`
	Events   []string `yaml:"events,omitempty" json:"events,omitempty"`
}

// FileTrigger starts a run on file-system events under a path.
type FileTrigger struct {
	Path      string   `yaml:"path" json:"path"`
	Glob      string   `yaml:"glob,omitempty" json:"glob,omitempty"`
	On        []string `yaml:"on,omitempty" json:"on,omitempty" jsonschema:"enum=create,enum=write,enum=remove,enum=rename"`
	Recursive bool     `yaml:"recursive,omitempty" json:"recursive,omitempty"`
	Debounce  Duration `yaml:"debounce,omitempty" json:"debounce,omitempty"`
}

// EventTrigger starts a run when an internal event of that name is emitted.
type EventTrigger struct {
	Name   string   `yaml:"name" json:"name"`
	Dedupe string   `yaml:"dedupe,omitempty" json:"dedupe,omitempty"`
	Window Duration `yaml:"window,omitempty" json:"window,omitempty"`
}
