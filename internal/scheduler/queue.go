package scheduler

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/trace"

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
	// admit is read by every Enqueue, set once by the daemon: no lock.
	admit atomic.Pointer[func(r *routine.Routine) error]
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

// ErrRefused is wrapped by the errors of Enqueue for a run that the
// function given to Admit refused: the request was fine, the run is not
// wanted now.
var ErrRefused = errors.New("run refused")

// Admit makes Enqueue ask admit first, for every run it is asked to
// create: a non-nil error refuses the run, and Enqueue returns it
// wrapped (the costs' budgets under on_exceed: stop).
func (q *Queue) Admit(admit func(r *routine.Routine) error) {
	q.admit.Store(&admit)
}

// Enqueue records the run req asks for, durably: it is in the store when
// Enqueue returns. With a dedupe key matching a run still in its window,
// it returns that run and true, and creates nothing.
//
// The run's trace is the one of the span ctx carries — the caller's
// traceparent (tracing.Extract), the step of a sub-run or of an emit —
// with that span as its parent; else a new trace.
func (q *Queue) Enqueue(ctx context.Context, req *Request) (*routine.Run, bool, error) {
	r := req.Routine
	if admit := q.admit.Load(); admit != nil {
		if err := (*admit)(r); err != nil {
			q.log.Warn("run refused", "routine", r.Name, "trigger", req.Trigger.Kind, "err", err)
			err = fmt.Errorf("queue run of %s: %w: %w", r.Name, ErrRefused, err)
			q.observe(req, false, err)
			return nil, false, err
		}
	}
	now := q.clock.Now().UTC()
	traceID, parent := traceOf(ctx)
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

		TraceID:      traceID,
		ParentSpanID: parent,
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
	attrs := []any{"run_id", run.ID, "routine", r.Name, "trigger", req.Trigger.Kind, "trace_id", run.TraceID}
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

// traceOf returns the trace of the span in ctx and that span's id (""
// when it has only a trace id: a run that started its trace), or a new
// trace id.
func traceOf(ctx context.Context) (traceID, parent string) {
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().IsValid() {
		if sc.SpanID().IsValid() {
			parent = sc.SpanID().String()
		}
		return sc.TraceID().String(), parent
	}
	// Trace ids need to be unique, not secret: no system entropy per run.
	var id trace.TraceID
	binary.BigEndian.PutUint64(id[:8], rand.Uint64())
	binary.BigEndian.PutUint64(id[8:], rand.Uint64()|1) // never all zeros, which is invalid
	return id.String(), ""
}

func (q *Queue) wake() {
	q.mu.Lock()
	ws := q.wakeups
	q.mu.Unlock()
	for _, w := range ws {
		w()
	}
}
