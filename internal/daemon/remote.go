package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/tracing"
	"github.com/routines-dev/routines/internal/trigger"
)

// RemoteConfig is what a remote daemon — a server, a worker, or a server
// with embedded workers — is built from. Store, Cache and Kinds are
// required; a server needs Listener.
type RemoteConfig struct {
	Store   store.Store
	Secrets *secrets.Resolver
	Kinds   stepkind.Registry
	Logger  *slog.Logger
	Warn    io.Writer
	// Cache holds the extracted bundles of the revisions this process
	// serves or executes.
	Cache *bundle.Cache
	// Poll is how often the current revisions are read again.
	Poll time.Duration

	// Listener, when set, makes the daemon a server: the API, trigger
	// ingress, and the time and mail triggers of the pushed routines.
	Listener net.Listener
	// TLS, when set, makes Listener serve HTTPS
	// (server.Certificate.TLSConfig); nil: plain HTTP.
	TLS *tls.Config
	// Triggers are the families of trigger kinds a server runs;
	// trigger.Builtin() when nil. File triggers are refused at push.
	Triggers []trigger.NewSource
	Check    Check
	// Vault is the builtin vault that /v1/secrets writes to; without one
	// those endpoints answer 501.
	Vault      server.Vault
	Token      string
	MaxQueued  int
	Limits     server.Limits
	RateLimits server.RateLimits
	// Alerts are the settings of the evaluation of the routines' alerts,
	// which a server does (once across its replicas) and a worker not.
	Alerts AlertOptions

	// Workers, when positive, executes that many runs at once here; a
	// worker has Workers > 0 and no Listener. WorkDir holds their run
	// workspaces. Placement is their region and labels: they run only
	// the routines whose region and labels it meets.
	Workers      int
	Placement    routine.Placement
	WorkDir      string
	Lease        time.Duration
	RequeueAfter time.Duration
	Unconfined   bool
	AllowMissing []string

	// Artifacts keeps the artifacts of runs where every worker finds
	// them; nil leaves them in the workspaces of the workers that made
	// them, lost to a run resumed elsewhere.
	Artifacts artifacts.Store

	// Metrics are the daemon's, served on GET /metrics of Listener;
	// new ones when nil. A server reports the queue and concurrency of
	// the whole deployment, a daemon with Workers its runs and slots.
	Metrics *metrics.Metrics
	// MetricsListener, when set, serves GET /metrics alone, with no
	// token: for a worker, which has no Listener.
	MetricsListener net.Listener
	// Costs are the rates GET /v1/costs prices runs at and the per-tag
	// budgets whose spent ones refuse new runs; nil: zero rates, no
	// budgets.
	Costs *cost.Config
	// Tracing makes the spans of runs and steps; Stop flushes it. Nil:
	// no spans.
	Tracing *tracing.Provider
}

// Remote is a daemon of a deployment on PostgreSQL: it holds no state the
// other servers and workers need; everything is in the store.
type Remote struct {
	services Group
	served   chan error
	// ID names this process on the runs it claims.
	ID string
}

// NewRemote builds a remote daemon; nothing runs before Start.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Listener == nil && cfg.Workers <= 0 {
		return nil, fmt.Errorf("a daemon that neither serves nor executes: give it a listener or workers")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Triggers == nil {
		cfg.Triggers = trigger.Builtin()
	}
	host, _ := os.Hostname()
	d := &Remote{served: make(chan error, 1), ID: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), ulid.Make().String()[20:])}
	rcfg := RevisionsConfig{Store: cfg.Store, Cache: cfg.Cache, Logger: logger, Poll: cfg.Poll}
	var (
		sched    *scheduler.Scheduler
		triggers *Triggers
		queue    = scheduler.NewQueue(cfg.Store, nil, logger)
		watched  = server.Notifying(cfg.Store)
	)
	revisions := NewRevisions(rcfg)
	catalog := revisions.Catalog()
	m := instrument(cfg.Metrics, logger, queue, cfg.Secrets)
	if cfg.MetricsListener != nil {
		d.services.Add("metrics listener", metricsListener(m, cfg.MetricsListener, logger, d.served))
	}
	spans := tracingOf(cfg.Tracing)
	// Stopped last: the spans of the runs that end during the shutdown
	// are exported too.
	d.services.Add("tracing", spans)
	if cfg.Workers > 0 {
		sched = newExecutor(executorConfig{
			Store: watched, Catalog: catalog, Kinds: cfg.Kinds, Secrets: cfg.Secrets,
			Events:   events.New(catalog, queue, logger),
			StateDir: cfg.WorkDir, Artifacts: cfg.Artifacts, Logger: logger, Worker: d.ID,
			Workers: cfg.Workers, Lease: cfg.Lease, RequeueAfter: cfg.RequeueAfter,
			Unconfined: cfg.Unconfined, AllowMissing: cfg.AllowMissing,
			Placement: &cfg.Placement,
			// Woken by the store (LISTEN/NOTIFY), the dispatcher polls
			// only for delayed runs coming due and leases running out.
			Waker: waker(cfg.Store), Poll: remotePoll,
			Metrics: m,
			Tracer:  spans.engineTracer(),
		})
		queue.OnQueued(sched.Wake)
	}
	var (
		api       *server.Server
		evaluator Service
	)
	if cfg.Listener != nil {
		var lookup trigger.SecretLookup
		if cfg.Secrets != nil {
			lookup = cfg.Secrets.Lookup
		}
		problems := server.NewProblems(nil)
		triggers = NewTriggers(cfg.Triggers, trigger.SourceEnv{
			Sink: tickOnce(catalog, Sink(catalog, queue)), Logger: logger, Warn: cfg.Warn,
			Problems: problems, Cursors: Cursors(cfg.Store), Secret: lookup,
			Active:  func(name string) bool { return scheduler.Active(context.Background(), cfg.Store, name) },
			Skipped: m.Skipped,
			LastFire: func(name string, i int) time.Time {
				r, ok := catalog.Get(name)
				if !ok || i >= len(r.Triggers) {
					return time.Time{}
				}
				return scheduler.LastFire(context.Background(), cfg.Store, name, r.Triggers[i].Kind())
			},
		})
		revisions.cfg.Triggers = triggers
		prices, budgets := costs(cfg.Costs, cfg.Store, catalog, queue, m, logger)
		if budgets != nil {
			// Their status is read before the first run is queued.
			d.services.Add("budgets", budgets)
		}
		cfgAPI := server.Config{
			Prices: prices, Budgets: budgets,
			Store: watched, Queue: queue, Routines: catalog,
			Token: cfg.Token, Teams: true, MaxQueued: cfg.MaxQueued, Logger: logger,
			Secret: lookup, Limits: cfg.Limits, RateLimits: cfg.RateLimits, Problems: problems,
			Deployer: NewDeployments(cfg.Store, revisions, cfg.Check, nil),
			Vault:    cfg.Vault,
			Fleet:    true,
			Metrics:  m,
		}
		m.WatchQueue(cfg.Store, catalog.All)
		if sched != nil {
			cfgAPI.Executions = sched
		}
		if cfg.Artifacts != nil {
			cfgAPI.Dashboard.Artifacts = cfg.Artifacts
		}
		api = server.New(cfgAPI)
		evaluator = alerts(cfg.Alerts, cfg.Store, catalog, cfg.Kinds, lookup, d.ID, logger)
		d.services.Add("listener", listener(api, cfg.Listener, cfg.Limits, cfg.TLS, d.served))
	}
	d.services.Add("revisions", revisions)
	if sched != nil {
		d.services.Add("namespace ceilings", NamespaceCeilings(cfg.Store, catalog, logger))
		d.services.Add("executor", Executor(sched))
	}
	if triggers != nil {
		d.services.Add("triggers", triggers)
		d.services.Add("alerts", evaluator)
	}
	if api != nil {
		d.services.Add("intake", Func{OnStop: func(context.Context) error { api.Drain(); return nil }})
	}
	return d, nil
}

// Start starts every service; the daemon is up when it returns.
func (d *Remote) Start(ctx context.Context) error { return d.services.Start(ctx) }

// Failed delivers the error that stopped the listener on its own.
func (d *Remote) Failed() <-chan error { return d.served }

// Stop refuses new work, stops the triggers, and lets the runs executing
// here finish until ctx ends, then puts them back in the queue for
// another worker.
func (d *Remote) Stop(ctx context.Context) error { return d.services.Stop(ctx) }

// remotePoll is how often a worker looks at the queue unwoken: for the
// runs that no write announces (a delayed run coming due, a lease of a
// dead worker running out), which so wait up to that long past their
// time. It bounds the queries an idle worker makes: one claim per poll
// (two round trips with the pool's ping of a connection idle for over a
// second), with the revisions' poll, keeps one server and four idle
// workers under 5 queries/s in all (bench: remote-idle).
const remotePoll = 5 * time.Second

// tickOnce makes each tick of a schedule one run across every server of
// a deployment: the servers all fire it, and a dedupe key of the trigger
// and the tick folds the later firings into the first one's run. A cron
// tick is the same instant on every server. The ticks of an every
// trigger are not: each server keeps the cadence of its own start, so
// the key is the period the tick falls in (its number since the epoch),
// which holds one tick of each server, and so one run.
func tickOnce(catalog *scheduler.Catalog, sink trigger.Sink) trigger.Sink {
	return func(ctx context.Context, f trigger.Fire) error {
		if f.DedupeKey == "" && (f.Kind == "cron" || f.Kind == "every") {
			f.DedupeKey = fmt.Sprintf("tick:%d:%d", f.Trigger, f.Scheduled.Unix())
			if r, ok := catalog.Get(f.Routine); ok && f.Kind == "every" && f.Trigger < len(r.Triggers) {
				period := r.Triggers[f.Trigger].Every.D()
				f.DedupeKey = fmt.Sprintf("tick:%d:%s:%d", f.Trigger, period, f.Scheduled.UnixNano()/int64(period))
			}
			f.DedupeWindow = tickWindow
		}
		return sink(ctx, f)
	}
}

// tickWindow is how long a tick's dedupe key holds: longer than servers'
// clocks may be apart, far shorter than any schedule's period matters for
// (the key holds the tick's time, so two ticks never share one).
const tickWindow = time.Hour
