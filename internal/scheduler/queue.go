package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Request is one run to create: what a trigger, the API, a routine step
// (a sub-run) or run-once asks of the queue.
type Request struct {
	Routine *routine.Routine
	Trigger routine.TriggerInfo
	Input   map[string]string
	// ID is the run's id; a new ULID when "".
	ID string
	// ReplayOf is the id of the dead-lettered run this one replays.
	ReplayOf string
	// DedupeKey, when set, folds this run into the routine's run with the
	// same key queued within the last DedupeWindow, if there is one.
	DedupeKey    string
	DedupeWindow time.Duration
	// NotBefore delays the run: no worker claims it earlier.
	NotBefore *time.Time
	// Running creates the run running: its creator executes it (run-once,
	// a sub-run), no worker claims it off the queue. Holder, when set, is
	// the worker that holds it, with a lease of Lease, so that when the
	// holder dies the run is taken over once the lease expires; without a
	// Holder the run holds its routine's slot until it ends.
	Running bool
	Holder  string
	Lease   time.Duration
}

// Queue creates runs: the one way every trigger, the API, sub-runs and
// run-once put a run in the store. It is safe for concurrent use.
type Queue struct {
	store store.Store
	clock clock.Clock
	log   *slog.Logger

	mu        sync.Mutex
	wakeups   []func()
	observers []func(req *Request, deduped bool, err error)
}

// NewQueue returns a queue that records runs in st, timed by clk
// (clock.Real when nil).
func NewQueue(st store.Store, clk clock.Clock, logger *slog.Logger) *Queue {
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Queue{store: st, clock: clk, log: logger}
}

// OnQueued registers wake to be called after each run the queue creates
// for workers to claim (not after a deduplicated request, nor a run
// created running): the dispatcher of this process looks at the queue at
// once rather than at its next poll.
func (q *Queue) OnQueued(wake func()) {
	q.mu.Lock()
	q.wakeups = append(q.wakeups, wake)
	q.mu.Unlock()
}

// OnEnqueued registers observe to be told of every request Enqueue
// handled: queued, folded into an earlier run (deduped), or not recorded
// (err), for the metrics of trigger ingress.
func (q *Queue) OnEnqueued(observe func(req *Request, deduped bool, err error)) {
	q.mu.Lock()
	q.observers = append(q.observers, observe)
	q.mu.Unlock()
}

// Enqueue records the run req asks for, durably: it is in the store when
// Enqueue returns. With a dedupe key matching a run still in its window,
// it returns that run and true, and creates nothing.
func (q *Queue) Enqueue(ctx context.Context, req *Request) (*routine.Run, bool, error) {
	r := req.Routine
	now := q.clock.Now().UTC()
	p := &store.RunCreateParams{
		ID:        req.ID,
		Routine:   r.Name,
		Revision:  r.Revision,
		Trigger:   req.Trigger,
		Input:     req.Input,
		Tags:      r.Tags,
		QueuedAt:  now,
		ReplayOf:  req.ReplayOf,
		NotBefore: req.NotBefore,
	}
	if p.ID == "" {
		p.ID = ulid.Make().String()
	}
	// A run created running executes where its creator does (a sub-run
	// within its caller, on the caller's worker): only a queued run asks
	// for a worker of its routine's region and labels.
	if req.Running {
		p.State, p.Worker, p.Lease = routine.StateRunning, req.Holder, req.Lease
	} else {
		p.Requires = r.Placement()
	}
	var (
		run *routine.Run
		dup bool
		err error
	)
	if req.DedupeKey != "" {
		until := now.Add(req.DedupeWindow)
		p.DedupeKey, p.DedupeUntil = req.DedupeKey, &until
		run, dup, err = q.store.RunCreateDeduped(ctx, p)
	} else {
		run, err = q.store.RunCreate(ctx, p)
	}
	q.observe(req, dup, err)
	if err != nil {
		return nil, false, fmt.Errorf("queue run of %s: %w", r.Name, err)
	}
	attrs := []any{"run_id", run.ID, "routine", r.Name, "trigger", req.Trigger.Kind}
	if req.DedupeKey != "" {
		attrs = append(attrs, "dedupe", req.DedupeKey)
	}
	switch {
	case dup:
		q.log.Info("run deduplicated", attrs...)
	case !req.Running:
		q.log.Info("run queued", attrs...)
		q.wake()
	}
	return run, dup, nil
}

func (q *Queue) observe(req *Request, deduped bool, err error) {
	q.mu.Lock()
	obs := q.observers
	q.mu.Unlock()
	for _, o := range obs {
		o(req, deduped, err)
	}
}

func (q *Queue) wake() {
	q.mu.Lock()
	ws := q.wakeups
	q.mu.Unlock()
	for _, w := range ws {
		w()
	}
}
