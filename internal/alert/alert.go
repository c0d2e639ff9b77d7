// Package alert owns the evaluation of routines' alerts (routine.yaml
// alerts:): a service that, every few seconds, computes each alert's
// metric over its window from the store's rollups (store.StatsReader),
// moves the alert between ok and firing by compare-and-set in the store
// (so that of the evaluators of several servers on one database exactly
// one records each transition), and delivers the record of each
// transition to Slack and webhooks through the daemon's step kinds,
// trying a failed delivery again later rather than losing it.
package alert

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/repeat"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/trigger"
)

// Store is what the evaluator reads and writes: the rollups of runs and
// the alerts' state and records.
type Store interface {
	store.StatsReader
	store.Alerts
}

// Routines are the routines whose alerts are evaluated; *scheduler.Catalog
// is one.
type Routines interface {
	Get(name string) (*routine.Routine, bool)
	All() []*routine.Routine
}

// DefaultInterval is how often alerts are evaluated when Config.Interval
// is zero: a condition is seen within it, plus the time the rollups of a
// run that ended take to be written (the write that ends it).
const DefaultInterval = 15 * time.Second

// Config is what an Evaluator is built from. Store, Routines and Kinds
// are required.
type Config struct {
	Store    Store
	Routines Routines
	// Kinds are the daemon's step kinds: "slack" posts an alert's Slack
	// message and "http" its webhook, with the rules (and the Slack
	// client) of the steps of those kinds.
	Kinds stepkind.Registry
	// Secret resolves the secrets a routine declares (its Slack token, a
	// webhook URL that holds a credential), with their audit record.
	Secret trigger.SecretLookup
	// Interval is how often alerts are evaluated; DefaultInterval when 0.
	Interval time.Duration
	// Holder names this evaluator in the claims of deliveries; several
	// evaluators on one store need different ones.
	Holder string
	// DashboardURL is the base URL of the dashboard that notifications
	// link to (GET /ui/runs?routine=NAME there, the dashboard's runs of the routine); "" for no link.
	DashboardURL string
	Clock        clock.Clock // clock.Real when nil
	Logger       *slog.Logger
}

// Evaluator evaluates alerts from Start until Stop.
type Evaluator struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	// deliver wakes the delivery loop after a pass recorded transitions.
	deliver chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// repeats keeps a failure of every pass (a store that is down) to a
	// line now and then in the log.
	repeats *repeat.Limiter
}

// New returns an evaluator built from cfg; nothing runs before Start.
func New(cfg Config) *Evaluator {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, deliver: make(chan struct{}, 1), repeats: repeat.New(cfg.Clock.Now)}
}

// Start evaluates the alerts at once, then every Interval, in one
// goroutine, and delivers their notifications in another: a slow Slack or
// webhook never delays an evaluation.
func (e *Evaluator) Start(ctx context.Context) error {
	ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.wg.Go(func() {
		e.every(ctx, func(ctx context.Context) {
			if e.Evaluate(ctx) > 0 {
				e.wake()
			}
		}, nil)
	})
	e.wg.Go(func() {
		first := true
		e.every(ctx, func(ctx context.Context) {
			// At start, what an earlier process left is delivered; then
			// a deployment whose routines have no alerts is not asked.
			if first || e.hasAlerts() {
				e.Deliver(ctx)
			}
			first = false
		}, e.deliver)
	})
	return nil
}

// hasAlerts reports whether a routine has alerts.
func (e *Evaluator) hasAlerts() bool {
	for _, r := range e.cfg.Routines.All() {
		if len(r.Alerts) > 0 {
			return true
		}
	}
	return false
}

// Stop ends the evaluations and deliveries, and waits for them until ctx
// ends; a delivery cut short is tried again by the next evaluator.
func (e *Evaluator) Stop(ctx context.Context) error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wake asks the delivery loop to look for records at once.
func (e *Evaluator) wake() {
	select {
	case e.deliver <- struct{}{}:
	default:
	}
}

// every calls fn now, then every Interval or when woken, until ctx ends.
func (e *Evaluator) every(ctx context.Context, fn func(context.Context), woken <-chan struct{}) {
	for {
		fn(ctx)
		t := e.clock.NewTimer(e.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-woken:
			t.Stop()
		}
	}
}
