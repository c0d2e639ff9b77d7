// Package stepkind is the contract between the engine and the step kinds:
// the Kind interface, the Registry that main builds from kinds, what one
// attempt is given (Execution) and gives back (Result, Error). It is a leaf
// so that the engine depends on it alone and not on the kinds themselves,
// whose SDKs (LLM providers, MCP, database drivers, mail) stay out of the
// engine's import closure; the kinds live in internal/steps.
package stepkind

import (
	"context"
	"io"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Kind executes one attempt of a step of its kind.
type Kind interface {
	// Name is the key of the step kind in routine.yaml ("run").
	Name() string
	// Execute runs one attempt. A returned error fails the attempt; the
	// Result may still carry an exit code and resource use.
	Execute(ctx context.Context, x *Execution) (*Result, error)
}

// DirFree is implemented by the kinds whose steps never use the routine
// directory (Execution.Dir, given them as it is): a run of a pushed
// revision makes its private writable copy of the directory only for a
// step of another kind.
type DirFree interface {
	Kind
	DirFree()
}

// Registry maps step kind names to their implementation.
type Registry map[string]Kind

// NewRegistry builds a registry from kinds, keyed by their names.
func NewRegistry(kinds ...Kind) Registry {
	r := make(Registry, len(kinds))
	for _, k := range kinds {
		r[k.Name()] = k
	}
	return r
}

// Execution is everything one attempt of a step may use. Its Action has
// already been rendered: templates are resolved.
type Execution struct {
	RunID   string
	StepID  string
	Phase   routine.Phase // main, compensate or on_failure
	Attempt int
	Action  *routine.Action

	// Dir is the absolute routine directory; Workspace the run's private
	// directory; ArtifactsDir where this step puts artifacts; ArtifactsIn the
	// directory holding the artifacts of earlier steps, one folder per step.
	Dir          string
	Workspace    string
	ArtifactsDir string
	ArtifactsIn  string
	// Artifacts are the files (relative to the working directory) to keep
	// as artifacts after the attempt succeeds. When it is not nil (the step
	// declares artifacts:, maybe as []), ArtifactsDir exists during the attempt.
	Artifacts []string

	// Env is the step's whole environment before kind-specific variables:
	// routine env, step env and resolved secrets.
	Env         map[string]string
	Permissions *routine.Permissions
	Limits      *routine.Limits
	// Resources limit the step's processes together (the routine's, with
	// the step's over them); nil: the host's defaults.
	Resources *routine.Resources
	// Unconfined runs processes without Landlock; only set when the user
	// allowed it and the kernel lacks Landlock.
	Unconfined bool
	// AllowMissing names sandbox layers the operator chose to run without
	// where the host lacks them (sandbox.Layers).
	AllowMissing []string

	Stdout io.Writer
	Stderr io.Writer

	// Routine is the name of the routine: the namespace of its state.
	Routine string
	// Namespace is the routine's namespace in a deployment ("" for the
	// default one): the events it emits reach that namespace's routines
	// only.
	Namespace string
	// State is the store of routines' state, and Now the engine's clock,
	// which stamps writes and judges expiry. State steps need both.
	State StateStore
	Now   func() time.Time
	// StateDir is the project's .routines directory, which steps may
	// not reach into (its store, secrets and daemon record).
	StateDir string
	// Events publishes the events of emit steps without server:; nil
	// when the run has nowhere to publish them.
	Events Publisher
	// Subrun runs another routine of the project as a sub-run of this
	// step and waits for it (routine steps); set by the engine.
	Subrun func(ctx context.Context, name string, input map[string]string) (*Subrun, error)
	// Redact replaces the values of the run's secrets by ***; nil when the
	// run has none. A kind that keeps data where the engine does not look
	// (the state store) uses it to refuse secrets.
	Redact func(string) string
}

// StateStore is the part of store.Store that state steps use.
type StateStore interface {
	StateGet(ctx context.Context, p *store.StateGetParams) (value string, found bool, err error)
	StatePut(ctx context.Context, p *store.StatePutParams) (existed bool, err error)
	StateDelete(ctx context.Context, p *store.StateDeleteParams) (existed bool, err error)
}

// Publisher publishes an event to the routines that listen to it: in a
// daemon, straight to its queue (internal/events); under run-once, to the
// project's running daemon over its API. Emit steps use it, so that a
// step needs neither HTTP to reach its own daemon nor the project's
// directory to find one.
type Publisher interface {
	Emit(ctx context.Context, e *Emission) (*api.EventResult, error)
}

// Emission is one event an emit step publishes.
type Emission struct {
	Event string
	// Data is the event; nil or empty is {}.
	Data map[string]string
	// Dedupe, when set, overrides the listeners' dedupe keys.
	Dedupe string
	// Token is the API token of a daemon reached over HTTP; a publisher
	// in the daemon's own process needs none.
	Token string
	// Namespace is the emitting routine's ("" for the default one): an
	// event published in process reaches that namespace's routines only,
	// as one posted with a token reaches the token's.
	Namespace string
}

// Subrun is what a routine step's call of another routine came to.
type Subrun struct {
	RunID   string
	State   routine.State
	Outputs routine.Outputs       // of its main steps, later ones overriding earlier
	Error   *routine.ErrorPayload // when it did not succeed
}

// Result is what one attempt produced.
type Result struct {
	// Outputs hold text, and the structured values of the outputs a kind
	// declares as such (routine.StepOutputs), built by the kind as
	// routine.DecodeJSON would decode them.
	Outputs  routine.Outputs
	ExitCode *int
	CPUUser  time.Duration
	CPUSys   time.Duration
	MaxRSSKB int64
	// Usage is what the attempt consumed besides CPU, for its costs: the
	// bytes of the bodies of the calls it made, the tokens of its model
	// calls. A failed attempt may return a Result for it alone. The
	// engine adds GBSeconds from MaxRSSKB and the attempt's wall time.
	Usage routine.Usage
}
