package routine

// EmitAction publishes an event: every routine with an event trigger of
// that name gets a run. It is posted to the daemon of the project (whose
// address is in .routines/serve.json) or to Server.
type EmitAction struct {
	Event  string            `yaml:"event" json:"event" jsonschema:"required,description=Name of the event\\, such as cpu.alert; routines with event: {name: …} of this name get a run."`
	Data   map[string]string `yaml:"data,omitempty" json:"data,omitempty" jsonschema:"description=The event: a mapping of keys to strings (templates); listeners read it as event.<key>."`
	Dedupe string            `yaml:"dedupe,omitempty" json:"dedupe,omitempty" jsonschema:"description=Dedupe key (a template); overrides the listeners' own dedupe: within their window a duplicate folds into the first run."`
	Server string            `yaml:"server,omitempty" json:"server,omitempty" jsonschema:"description=URL of the daemon or server to emit to (default: the project's running daemon\\, from .routines/serve.json)."`
	Token  string            `yaml:"token,omitempty" json:"token,omitempty" jsonschema:"description=API token for server (default $ROUTINES_TOKEN); write it as a secret reference such as {{ROUTINES_TOKEN}}."`
}
