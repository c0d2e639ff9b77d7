// Package engine executes one run of a routine: the order of its steps (file
// order, or the DAG of needs), conditions, retries with backoff, timeouts,
// compensation, the on_failure path and dead-lettering, with every step
// transition checkpointed in the store before the next step starts. It gets
// its clock, store, step kinds and secrets as parameters and imports no
// trigger, server or command line.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
)

// Config holds what an Engine is built from. Store and Kinds are required.
type Config struct {
	Store store.Store
	Kinds stepkind.Registry
	// StateDir holds run workspaces (StateDir/runs/<run id>): artifacts,
	// outputs and each step's TMPDIR.
	StateDir string
	// Clock times the run: its records, retries' backoffs and state's
	// TTLs; clock.Real when nil. `routines test` runs on a virtual clock.
	Clock    clock.Clock
	Logger   *slog.Logger
	Observer Observer
	Secrets  SecretSource
	// Routines finds the routines that routine steps call; without it a
	// routine step fails.
	Routines Routines
	// Events publishes the events of emit steps without server: — in a
	// daemon its in-process *events.Publisher, under run-once the
	// project's daemon; without it such a step fails.
	Events stepkind.Publisher
	// Leases keeps the leases of the sub-runs the engine creates, in the
	// name of the calling run's worker; *scheduler.Leases is one. Nil
	// (tests): sub-runs are recorded running with no lease.
	Leases Leases
	// Unconfined runs steps without Landlock. The caller sets it only when
	// the user allowed it and the kernel lacks Landlock.
	Unconfined bool
	// AllowMissing names sandbox layers the operator chose to run without
	// where the host lacks them (routines doctor lists them).
	AllowMissing []string
	// Artifacts, when set, keeps the artifacts of main steps where the
	// run finds them on any worker: the engine puts them there after each
	// step that declares artifacts: succeeds, and a run resumed here
	// fetches those of its finished steps that its workspace lacks (the
	// steps ran on another worker). Nil: artifacts stay in the workspace
	// of the machine that made them, as in a local daemon.
	Artifacts artifacts.Store
	// RequeueAfter, when positive, lets a run give its worker back during
	// long retry backoffs: when a main step's next try is due more than
	// RequeueAfter from now, Execute ends the attempt of the run there and
	// returns a *Requeue error; the caller puts the run back in the queue
	// not before Requeue.At, and the next Execute of the run resumes at
	// that step, its attempts counting on. Zero: the engine sleeps through
	// every backoff (run-once).
	RequeueAfter time.Duration
	// Tracer makes a span per execution of a run and a child per attempt
	// of a step, in the trace the run was queued with; the step kinds'
	// HTTP clients add theirs under the step's. The OpenTelemetry API
	// only: main gives the SDK's (internal/tracing), which the engine
	// does not import. Nil: no spans, at no cost; the runs a run queues
	// (sub-runs, events) still join its trace.
	Tracer trace.Tracer
}

// Requeue is the error Execute returns when a run stopped to wait for a
// retry out of the queue (Config.RequeueAfter). The run is recorded
// running, with its finished steps checkpointed; the caller requeues it.
type Requeue struct {
	At   time.Time // when the step's next try is due
	Step string
}

func (r *Requeue) Error() string {
	return fmt.Sprintf("step %s retries at %s: requeue the run", r.Step, r.At.Format(time.RFC3339Nano))
}

// RequeueAt returns At, for callers that match the error by interface.
func (r *Requeue) RequeueAt() time.Time { return r.At }

// Leases renews the leases of the runs the engine's caller holds: a
// sub-run is created running, leased to the calling run's worker, and
// held while it executes.
type Leases interface {
	// Lease is how long a lease lasts without renewal.
	Lease() time.Duration
	// Hold renews the lease of run id until release is called, and
	// returns ctx made to end when the run is to stop (its cancel was
	// requested, its lease lost).
	Hold(ctx context.Context, id string) (context.Context, func())
}

// Engine executes runs. It is safe for concurrent use by many runs.
type Engine struct {
	store        store.Store
	kinds        stepkind.Registry
	stateDir     string
	clock        clock.Clock
	logger       *slog.Logger
	observer     Observer
	secrets      SecretSource
	routines     Routines
	events       stepkind.Publisher
	leases       Leases
	queue        *scheduler.Queue // records the sub-runs of routine steps
	unconfined   bool
	allowMissing []string
	requeue      time.Duration
	artifacts    artifacts.Store
	tracer       trace.Tracer
}

// New returns an engine built from cfg.
func New(cfg Config) *Engine {
	e := &Engine{
		store:        cfg.Store,
		kinds:        cfg.Kinds,
		stateDir:     cfg.StateDir,
		clock:        cfg.Clock,
		logger:       cfg.Logger,
		observer:     cfg.Observer,
		secrets:      cfg.Secrets,
		routines:     cfg.Routines,
		events:       cfg.Events,
		leases:       cfg.Leases,
		unconfined:   cfg.Unconfined,
		allowMissing: cfg.AllowMissing,
		requeue:      cfg.RequeueAfter,
		artifacts:    cfg.Artifacts,
		tracer:       cfg.Tracer,
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	e.queue = scheduler.NewQueue(cfg.Store, e.clock, e.logger)
	if e.observer == nil {
		e.observer = NopObserver{}
	}
	if e.secrets == nil {
		e.secrets = NoSecrets{}
	}
	return e
}

// Workspace returns the private directory of a run.
func (e *Engine) Workspace(runID string) string {
	return filepath.Join(e.stateDir, "runs", runID)
}

// Execute runs run, a run of r already recorded in the store, to a final
// state and records it. Cancelling ctx cancels the run: running steps'
// processes are killed and the run ends cancelled. The returned error is
// only for failures of the engine itself (the store), or a *Requeue when
// Config.RequeueAfter is set; a failed run is a run in state failed, not
// an error.
func (e *Engine) Execute(ctx context.Context, r *routine.Routine, run *routine.Run) (*routine.Run, error) {
	return e.newRunExec(r, run).execute(ctx)
}

// Observer is told about a run as it happens, to show it live. Its methods
// are called synchronously from the run's goroutines and must be quick and
// safe for concurrent use.
type Observer interface {
	RunStarted(run *routine.Run)
	StepStarted(run *routine.Run, step *routine.StepRun)
	StepFinished(run *routine.Run, step *routine.StepRun)
	Log(line routine.LogLine)
	RunFinished(run *routine.Run)
}

// NopObserver ignores everything.
type NopObserver struct{}

// RunStarted implements Observer.
func (NopObserver) RunStarted(*routine.Run) {}

// StepStarted implements Observer.
func (NopObserver) StepStarted(*routine.Run, *routine.StepRun) {}

// StepFinished implements Observer.
func (NopObserver) StepFinished(*routine.Run, *routine.StepRun) {}

// Log implements Observer.
func (NopObserver) Log(routine.LogLine) {}

// RunFinished implements Observer.
func (NopObserver) RunFinished(*routine.Run) {}

// SecretSource resolves the secrets a routine declares (rt.Secrets, in
// its namespace), at the start of every run; *secrets.Resolver is one. A
// missing secret is an error that names it and never a value.
type SecretSource interface {
	Resolve(ctx context.Context, rt *routine.Routine, run *routine.Run) (map[string]string, error)
}

// NoSecrets resolves nothing: any declared secret is missing.
type NoSecrets struct{}

// Resolve implements SecretSource.
func (NoSecrets) Resolve(_ context.Context, rt *routine.Routine, _ *routine.Run) (map[string]string, error) {
	if len(rt.Secrets) > 0 {
		return nil, fmt.Errorf("secret %s is not set", rt.Secrets[0].Name)
	}
	return map[string]string{}, nil
}
