package routine

import (
	"fmt"
	"regexp"
)

// EmitAction publishes an event: every routine with an event trigger of
// that name gets a run. It goes to the daemon that runs the routine (under
// run-once, the project's running daemon, found in .routines/serve.json),
// or to Server.
type EmitAction struct {
	Event  string            `yaml:"event" json:"event" jsonschema:"required,description=Name of the event\\, such as cpu.alert; routines with event: {name: …} of this name get a run."`
	Data   map[string]string `yaml:"data,omitempty" json:"data,omitempty" jsonschema:"description=The event: a mapping of keys to strings (templates); listeners read it as event.<key>."`
	Dedupe string            `yaml:"dedupe,omitempty" json:"dedupe,omitempty" jsonschema:"description=Dedupe key (a template); overrides the listeners' own dedupe: within their window a duplicate folds into the first run."`
	Server string            `yaml:"server,omitempty" json:"server,omitempty" jsonschema:"description=URL of the daemon or server to emit to (default: the daemon that runs the routine; under run-once\\, the project's running daemon)."`
	Token  string            `yaml:"token,omitempty" json:"token,omitempty" jsonschema:"description=API token for server (default $ROUTINES_TOKEN); write it as a secret reference such as {{ROUTINES_TOKEN}}."`
}

// MaxEventNameLen bounds the name of an event.
const MaxEventNameLen = 200

// eventNamePattern is what an event name may hold: no separator of paths
// or lines, so a name goes into a URL path, a log line or a terminal as
// itself and nothing more.
var eventNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// CheckEventName returns what is wrong with the name of an event (an
// event trigger's, an emit step's, a published one's), or nil.
func CheckEventName(name string) error {
	if len(name) < 1 || len(name) > MaxEventNameLen || !eventNamePattern.MatchString(name) {
		return fmt.Errorf("event name %q must be 1 to %d letters, digits and _ . : -, such as cpu.alert", name, MaxEventNameLen)
	}
	return nil
}
