package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/routines-dev/routines/internal/alert"
	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/owner"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/retention"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/server/dashboard"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/tracing"
	"github.com/routines-dev/routines/internal/trigger"
)

// LocalConfig is what the local daemon (routines serve) is built from.
// Root, Project, Store, Kinds and Listener are required.
type LocalConfig struct {
	// Root is the directory whose routine files are served, Routines the
	// valid ones found there.
	Root     string
	Project  project.Project
	Routines []*routine.Routine
	Store    store.Store
	Secrets  *secrets.Resolver
	Kinds    stepkind.Registry
	// Triggers are the families of trigger kinds; trigger.Builtin() when nil.
	Triggers []trigger.NewSource
	Logger   *slog.Logger
	// Warn tells the operator of reloads and of triggers left off.
	Warn io.Writer
	// Check vets a routine file reloaded; nil: none.
	Check    Check
	Listener net.Listener
	// TLS, when set, makes Listener serve HTTPS
	// (server.Certificate.TLSConfig); nil: plain HTTP.
	TLS *tls.Config
	// Reload watches the routine files and reloads them when they change.
	Reload bool

	Workers      int
	Lease        time.Duration
	RequeueAfter time.Duration
	Unconfined   bool
	AllowMissing []string

	Token      string
	MaxQueued  int
	Limits     server.Limits
	RateLimits server.RateLimits
	// Vault is the builtin vault that /v1/secrets writes to; without
	// one, secrets are set only where the daemon runs.
	Vault server.Vault
	// Metrics are the daemon's (one daemon's: it registers its collectors
	// in them), served on GET /metrics; new ones when nil.
	Metrics *metrics.Metrics

	// Costs are the rates GET /v1/costs prices runs at and the per-tag
	// budgets whose spent ones refuse new runs; nil: zero rates, no
	// budgets.
	Costs *cost.Config
	// Tracing makes the spans of runs and steps; Stop flushes it. Nil:
	// no spans.
	Tracing *tracing.Provider
	// Alerts are the settings of the evaluation of the routines' alerts.
	Alerts AlertOptions
	// Retention is the policy the daemon prunes the store and the runs'
	// folders by, continuously; nil: nothing is pruned.
	Retention *retention.Policy
}

// AlertOptions are the settings of the evaluation of alerts, by serve
// and server.
type AlertOptions struct {
	// Interval is how often alerts are evaluated; alert.DefaultInterval
	// when 0.
	Interval time.Duration
	// DashboardURL is the base URL of the dashboard as its users reach
	// it, which notifications link to; "" for no link.
	DashboardURL string
}

// alerts is the service that evaluates the alerts of catalog's routines,
// named holder in the claims of their notifications.
func alerts(o AlertOptions, st store.Store, catalog *scheduler.Catalog, kinds stepkind.Registry, lookup trigger.SecretLookup, holder string, logger *slog.Logger) Service {
	return alert.New(alert.Config{
		Store: st, Routines: catalog, Kinds: kinds, Secret: lookup, Interval: o.Interval,
		Holder: holder, DashboardURL: o.DashboardURL, Logger: logger,
	})
}

// Local is the local daemon: the queue of one project worked by this
// process, its triggers, the reload of its routine files and the API.
type Local struct {
	services Group
	owner    *owner.Owner
	api      *server.Server
	served   chan error
}

// NewLocal builds the local daemon; nothing runs before Start. The
// daemon owns the runs it executes under an owner id of the project
// whose liveness the next daemon checks: the runs of a dead owner are
// taken over at once, not when their leases expire.
func NewLocal(cfg LocalConfig) (*Local, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Triggers == nil {
		cfg.Triggers = trigger.Builtin()
	}
	own, err := owner.Acquire(cfg.Project.OwnersDir())
	if err != nil {
		return nil, err
	}
	d := &Local{owner: own, served: make(chan error, 1)}
	spans := tracingOf(cfg.Tracing)
	// Stopped last: the spans of the runs that end during the shutdown
	// are exported too.
	d.services.Add("tracing", spans)
	// Watching from the first write to the last.
	var writes *store.Writability
	if p, ok := cfg.Store.(store.WriteProber); ok {
		writes = p.Writability()
		d.services.Add("store writes", watchWrites(p, logger))
	}
	catalog := scheduler.NewCatalog(cfg.Routines)
	// The runs' writes go through a store that wakes whoever follows a
	// run's logs (GET /v1/runs/<id>/logs, routines logs -f).
	watched := server.Notifying(cfg.Store)
	var lookup trigger.SecretLookup
	if cfg.Secrets != nil {
		lookup = cfg.Secrets.Lookup
	}
	queue := scheduler.NewQueue(cfg.Store, nil, logger)
	m := instrument(cfg.Metrics, logger, queue, cfg.Secrets)
	m.WatchQueue(cfg.Store, catalog.All)
	sched := newExecutor(executorConfig{
		Store: watched, Catalog: catalog, Kinds: cfg.Kinds, Secrets: cfg.Secrets,
		Events:   events.New(catalog, queue, logger),
		StateDir: cfg.Project.StateDir(), Logger: logger, Worker: own.ID(),
		Workers: cfg.Workers, Lease: cfg.Lease, RequeueAfter: cfg.RequeueAfter,
		Unconfined: cfg.Unconfined, AllowMissing: cfg.AllowMissing,
		Liveness: owner.Dir(cfg.Project.OwnersDir()),
		Waker:    waker(cfg.Store),
		Metrics:  m,
		Tracer:   spans.engineTracer(),
	})
	queue.OnQueued(sched.Wake)
	// What fails until the operator acts, for GET /v1/status: webhooks
	// and Slack commands whose secret is not set, email triggers.
	problems := server.NewProblems(nil)
	triggers := NewTriggers(cfg.Triggers, trigger.SourceEnv{
		Sink:     Sink(catalog, queue),
		Logger:   logger,
		Warn:     cfg.Warn,
		Problems: problems,
		Cursors:  Cursors(cfg.Store),
		Secret:   lookup,
		Active:   sched.Active,
		Skipped:  m.Skipped,
		LastFire: func(name string, i int) time.Time {
			r, ok := catalog.Get(name)
			if !ok || i >= len(r.Triggers) {
				return time.Time{}
			}
			return sched.LastFire(name, r.Triggers[i].Kind())
		},
	})
	prices, budgets := costs(cfg.Costs, cfg.Store, catalog, queue, m, logger)
	d.api = server.New(server.Config{
		Store: watched, Queue: queue, Executions: sched, Routines: catalog,
		Token: cfg.Token, Teams: cfg.Token != "", MaxQueued: cfg.MaxQueued, Logger: logger,
		Secret: lookup, Limits: cfg.Limits, Writes: writes, RateLimits: cfg.RateLimits,
		Problems: problems, Project: cfg.Project.Dir, Vault: cfg.Vault,
		Metrics: m,
		Prices:  prices, Budgets: budgets,
		// The runs' artifacts stay in their workspaces (engine.Workspace).
		Dashboard: dashboard.Sources{Artifacts: dashboard.Workspaces(cfg.Project.RunsDir())},
	})
	if budgets != nil {
		// Their status is read before the first run is queued.
		d.services.Add("budgets", budgets)
	}
	// Started in this order, stopped in the reverse: the listener serves
	// until the runs in flight are over (a request waiting for a run gets
	// its answer); intake is refused first, then triggers stop, then the
	// runs in flight get their grace.
	d.services.Add("listener", listener(d.api, cfg.Listener, cfg.Limits, cfg.TLS, d.served))
	d.services.Add("namespace ceilings", NamespaceCeilings(cfg.Store, catalog, logger))
	d.services.Add("executor", Executor(sched))
	d.services.Add("triggers", triggers)
	d.services.Add("reloader", NewReloader(ReloaderConfig{
		Root: cfg.Root, Catalog: catalog, Triggers: triggers, Check: cfg.Check,
		Logger: logger, Warn: cfg.Warn, Watch: cfg.Reload,
	}))
	d.services.Add("alerts", alerts(cfg.Alerts, cfg.Store, catalog, cfg.Kinds, lookup, own.ID(), logger))
	if cfg.Retention != nil {
		pr, err := retention.New(retention.Config{Store: cfg.Store, Policy: *cfg.Retention, RunsDir: cfg.Project.RunsDir(), Logger: logger})
		if err != nil {
			own.Release()
			return nil, err
		}
		d.services.Add("retention", retention.NewService(pr, retention.Interval(*cfg.Retention)))
	}
	d.services.Add("intake", Func{OnStop: func(context.Context) error { d.api.Drain(); return nil }})
	return d, nil
}

// Start starts every service; the daemon is up when it returns.
func (d *Local) Start(ctx context.Context) error {
	if err := d.services.Start(ctx); err != nil {
		d.owner.Release()
		return err
	}
	return nil
}

// Failed delivers the error that stopped the listener on its own, if it
// does: the daemon should then Stop.
func (d *Local) Failed() <-chan error { return d.served }

// Stop refuses new work, stops the triggers, lets the runs in flight
// finish until ctx ends (the grace period), then cancels them; the next
// daemon resumes them at their first unfinished step.
func (d *Local) Stop(ctx context.Context) error {
	err := d.services.Stop(ctx)
	d.owner.Release()
	return err
}

// listener is the service of the API's HTTP server on ln: it serves from
// Start, and sends to served the error that stops it on its own; Stop
// closes it, giving the requests in flight a second.
func listener(api *server.Server, ln net.Listener, lim server.Limits, tlsConf *tls.Config, served chan<- error) Service {
	httpSrv, limited := api.HTTPServer(ln, lim, tlsConf)
	return Func{
		OnStart: func(context.Context) error {
			go func() {
				if tlsConf != nil {
					served <- httpSrv.ServeTLS(limited, "", "")
					return
				}
				served <- httpSrv.Serve(limited)
			}()
			return nil
		},
		OnStop: func(context.Context) error { return shutdown(httpSrv) },
	}
}

// shutdown closes an HTTP server, giving the requests in flight a second.
func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// executorConfig is what newExecutor builds a scheduler and its engine from.
type executorConfig struct {
	Store        store.Store
	Catalog      *scheduler.Catalog
	Kinds        stepkind.Registry
	Secrets      *secrets.Resolver
	Events       stepkind.Publisher
	StateDir     string
	Artifacts    artifacts.Store
	Logger       *slog.Logger
	Worker       string
	Workers      int
	Lease        time.Duration
	RequeueAfter time.Duration
	Unconfined   bool
	AllowMissing []string
	Liveness     scheduler.Liveness
	// Placement makes the executor a worker of a deployment (remote
	// mode); nil: a local daemon (scheduler.Config.Placement).
	Placement *routine.Placement
	// Waker wakes the dispatcher on the store's writes; Poll is how often
	// it looks at the queue without one (1s when 0).
	Waker store.Waker
	Poll  time.Duration
	// Metrics observe the runs, and report the executor's slots.
	Metrics *metrics.Metrics
	// Tracer makes the spans of runs and steps.
	Tracer trace.Tracer
}

// newExecutor returns the scheduler that works the queue with an engine:
// the part every daemon that executes runs shares.
func newExecutor(c executorConfig) *scheduler.Scheduler {
	leases := scheduler.NewLeases(c.Store, c.Worker, c.Lease, nil, c.Logger)
	var engineSecrets engine.SecretSource
	if c.Secrets != nil {
		engineSecrets = c.Secrets
	}
	sched := scheduler.New(scheduler.Config{
		Store: c.Store,
		Executor: engine.New(engine.Config{
			Store:        c.Store,
			Kinds:        c.Kinds,
			StateDir:     c.StateDir,
			Artifacts:    c.Artifacts,
			Logger:       c.Logger,
			Secrets:      engineSecrets,
			Routines:     c.Catalog,
			Events:       c.Events,
			Leases:       leases,
			Observer:     c.Metrics,
			Unconfined:   c.Unconfined,
			AllowMissing: c.AllowMissing,
			// Long retry backoffs wait in the queue, not on a worker.
			RequeueAfter: c.RequeueAfter,
			Tracer:       c.Tracer,
		}),
		Catalog:   c.Catalog,
		Leases:    leases,
		Liveness:  c.Liveness,
		Placement: c.Placement,
		Waker:     c.Waker,
		Poll:      c.Poll,
		// What the steps of a dead owner's run left, killed by their cgroups.
		KillRunProcesses: func(_ context.Context, runID string) error { return sandbox.KillRun(runID) },
		Workers:          c.Workers,
		Logger:           c.Logger,
		OnEnd:            c.Metrics.RunEnded,
	})
	region := ""
	if c.Placement != nil {
		region = c.Placement.Region
	}
	c.Metrics.WatchSlots(region, sched.Slots)
	return sched
}

// tracingService is the tracer provider of a daemon as the service whose
// Stop flushes the spans still buffered.
type tracingService struct{ *tracing.Provider }

// engineTracer is the tracer of the engine: nil when no span is
// exported, so that runs make none.
func (t tracingService) engineTracer() trace.Tracer {
	if !t.Enabled() {
		return nil
	}
	return t.Tracer()
}

// tracingOf returns p (a no-op when nil) as a service.
func tracingOf(p *tracing.Provider) tracingService {
	if p == nil {
		p = tracing.Noop()
	}
	return tracingService{p}
}

// Start implements Service: the provider works from its creation.
func (tracingService) Start(context.Context) error { return nil }

// Stop implements Service.
func (t tracingService) Stop(ctx context.Context) error { return t.Shutdown(ctx) }

// waker is st as a store.Waker, or nil when it wakes nobody.
func waker(st store.Store) store.Waker {
	w, _ := st.(store.Waker)
	return w
}

// Executor is the service of a scheduler: it works the queue from Start
// until Stop, whose ctx is the grace the runs in flight get.
func Executor(s *scheduler.Scheduler) Service {
	return Func{
		OnStart: func(ctx context.Context) error { s.Start(ctx); return nil },
		OnStop:  func(ctx context.Context) error { s.Shutdown(ctx); return nil },
	}
}

// Sink returns the sink of every trigger: a firing becomes a run of its
// routine in catalog, through the queue.
func Sink(catalog *scheduler.Catalog, queue *scheduler.Queue) trigger.Sink {
	return func(ctx context.Context, f trigger.Fire) error {
		r, ok := catalog.Get(f.Routine)
		if !ok {
			return errors.New("no routine " + f.Routine)
		}
		_, _, err := queue.Enqueue(ctx, &scheduler.Request{
			Routine: r, Trigger: routine.TriggerInfo{Kind: f.Kind, Payload: f.Payload},
			DedupeKey: f.DedupeKey, DedupeWindow: f.DedupeWindow,
		})
		if errors.Is(err, store.ErrUnwritable) { // logged once by writesWatch
			err = fmt.Errorf("%w: %w", trigger.ErrSinkDown, err)
		}
		return err
	}
}

// Cursors keeps the cursors of triggers (an email trigger's last UID) in
// the routines' state in st.
func Cursors(st store.Store) trigger.CursorStore { return stateCursors{st} }

type stateCursors struct{ st store.Store }

func (c stateCursors) Load(ctx context.Context, name, key string) (string, bool, error) {
	return c.st.StateGet(ctx, &store.StateGetParams{Routine: name, Key: key, Now: time.Now()})
}

func (c stateCursors) Save(ctx context.Context, name, key, value string) error {
	_, err := c.st.StatePut(ctx, &store.StatePutParams{Routine: name, Key: key, Value: value, Now: time.Now()})
	return err
}
