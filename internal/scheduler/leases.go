package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/store"
)

// ErrCancelRequested is the cause of the context of a run held here whose
// cancel was asked for (store.RunCancelRequest, POST /v1/runs/<id>/cancel):
// the engine ends the run cancelled, with this as its message.
var ErrCancelRequested = errors.New("cancelled through the API")

// ErrLeaseLost is the cause of the context of a run held here whose lease
// could not be renewed for longer than the lease (the store was
// unreachable): another worker may take it over, so its steps here are
// killed, and the run goes back to the queue if it is still this
// worker's.
var ErrLeaseLost = errors.New("the run's lease ran out: the store could not be reached to renew it")

// ErrShutdown is the cause of the context of the runs a scheduler still
// executes when its shutdown's grace is over: the engine hands them back
// (they stay running, never recorded cancelled), and the scheduler puts
// them back in the queue, to resume at their first unfinished step.
var ErrShutdown = errors.New("the daemon is shutting down")

// Leases renews, every Lease/3 and in one store call, the leases of the
// runs an owner executes: the runs a scheduler claimed, a run-once's run,
// and the sub-runs they call. A run is renewed while it is held; one
// whose execution ended without releasing it (a store failure) is not,
// so its lease expires and it is taken over. Each hold has a context,
// cancelled when the run's cancel is requested (ErrCancelRequested: the
// heartbeat tells, or at once the store's CancelWakeups) or when its lease
// could not be renewed in time (ErrLeaseLost). Start it once, Stop it once.
type Leases struct {
	store store.Store
	owner string
	lease time.Duration
	clock clock.Clock
	log   *slog.Logger

	mu    sync.Mutex
	held  map[string]*heldRun
	next  uint64 // numbers the holds
	stop  chan struct{}
	done  chan struct{}
	start sync.Once
}

// heldRun is a run held here, once or more.
type heldRun struct {
	cancels map[uint64]context.CancelCauseFunc // of each hold not released, by number
	// renewed is when the run's lease was last renewed, or first held:
	// the lease lasts until renewed + lease.
	renewed time.Time
	// stopped is set once its holds were cancelled: they are not again,
	// and its lease, still renewed while it ends, no longer hurries them.
	stopped bool
}

// NewLeases returns the lease keeper of owner's runs; lease is 30s when
// 0, clk clock.Real when nil.
func NewLeases(st store.Store, owner string, lease time.Duration, clk clock.Clock, logger *slog.Logger) *Leases {
	if lease <= 0 {
		lease = 30 * time.Second
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Leases{store: st, owner: owner, lease: lease, clock: clk, log: logger,
		held: map[string]*heldRun{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Owner returns the owner whose leases these are.
func (l *Leases) Owner() string { return l.owner }

// Lease returns how long a lease lasts without renewal.
func (l *Leases) Lease() time.Duration { return l.lease }

// Hold renews the lease of run id until release is called, and returns
// the context to execute it under: ctx, cancelled with ErrCancelRequested
// or ErrLeaseLost as its cause (context.Cause) when the run is to stop.
func (l *Leases) Hold(ctx context.Context, id string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	h := l.held[id]
	if h == nil {
		h = &heldRun{cancels: map[uint64]context.CancelCauseFunc{}, renewed: l.clock.Now()}
		l.held[id] = h
	}
	l.next++
	n := l.next
	h.cancels[n] = cancel
	l.mu.Unlock()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(h.cancels, n)
			if len(h.cancels) == 0 && l.held[id] == h {
				delete(l.held, id)
			}
			l.mu.Unlock()
			cancel(nil)
		})
	}
}

// Holds reports whether run id is held: executed by this owner, or a
// sub-run of one.
func (l *Leases) Holds(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[id] != nil
}

// Start starts the heartbeat. With w, a cancel request that w tells of
// is heard at once rather than at the next heartbeat.
func (l *Leases) Start(w store.Waker) {
	l.start.Do(func() {
		var cancels <-chan struct{}
		if w != nil {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-l.stop; cancel() }()
			cancels = w.CancelWakeups(ctx)
		}
		go l.loop(cancels)
	})
}

// Stop stops the heartbeat and waits for it.
func (l *Leases) Stop() {
	close(l.stop)
	l.start.Do(func() { close(l.done) }) // never started
	<-l.done
}

// loop renews the leases every Lease/3, sooner when a held run's lease
// runs out before (its renewals failed), and when a cancel is requested.
func (l *Leases) loop(cancels <-chan struct{}) {
	defer close(l.done)
	for {
		t := l.clock.NewTimer(l.wait())
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C():
		case _, ok := <-cancels:
			t.Stop()
			if !ok {
				cancels = nil
			}
		}
		l.renew()
	}
}

// wait is how long until the next renewal: Lease/3, or until the first
// lease of a held run runs out when that is sooner.
func (l *Leases) wait() time.Duration {
	d := l.lease / 3
	now := l.clock.Now()
	l.mu.Lock()
	for _, h := range l.held {
		if !h.stopped {
			d = min(d, h.renewed.Add(l.lease).Sub(now))
		}
	}
	l.mu.Unlock()
	return max(d, 0)
}

// renew extends the leases of the runs held now, and cancels those whose
// cancel was requested, and those whose lease ran out unrenewed.
func (l *Leases) renew() {
	l.mu.Lock()
	ids := make([]string, 0, len(l.held))
	for id := range l.held {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	// The lease runs from before the call: the store's may start later,
	// never sooner.
	now := l.clock.Now()
	hb, err := l.store.RunHeartbeat(context.Background(), &store.RunHeartbeatParams{
		Worker: l.owner, IDs: ids, Now: now, Lease: l.lease,
	})
	if err != nil {
		l.log.Log(context.Background(), store.LogLevel(err, slog.LevelError), "heartbeat", "owner", l.owner, "err", err)
		hb = &store.Heartbeat{}
		if errors.Is(err, store.ErrUnwritable) {
			// The storage refuses every writer's writes, claims
			// included: nobody can take these runs over meanwhile, so
			// their steps go on, and wait at their next checkpoint.
			// Once the store writes again, the checkpointer confirms
			// the lease before the next step starts.
			hb.Renewed = ids
		}
	}
	cancel := map[string]error{}
	for _, id := range hb.Cancel {
		cancel[id] = ErrCancelRequested
	}
	l.mu.Lock()
	for _, id := range hb.Renewed {
		if h := l.held[id]; h != nil {
			h.renewed = now
		}
	}
	for id, h := range l.held {
		if _, ok := cancel[id]; !ok && !now.Before(h.renewed.Add(l.lease)) {
			cancel[id] = ErrLeaseLost
		}
	}
	var fns []func()
	for id, cause := range cancel {
		h := l.held[id]
		if h == nil || h.stopped {
			delete(cancel, id)
			continue
		}
		h.stopped = true
		for _, c := range h.cancels {
			fns = append(fns, func() { c(cause) })
		}
	}
	l.mu.Unlock()
	for id, cause := range cancel {
		if errors.Is(cause, ErrLeaseLost) {
			l.log.Warn("lease of a run ran out unrenewed: its steps here are stopped, another worker may take it over", "run_id", id, "owner", l.owner)
		} else {
			l.log.Info("cancel of a run requested: stopping it", "run_id", id, "owner", l.owner)
		}
	}
	for _, fn := range fns {
		fn()
	}
}

// cancelRequested reports whether the cancel of run id, held here, was
// requested: asked of the store for a run taken back, whose request may
// predate its hold. A store that fails to answer says no.
func (l *Leases) cancelRequested(id string) bool {
	hb, err := l.store.RunHeartbeat(context.Background(), &store.RunHeartbeatParams{
		Worker: l.owner, IDs: []string{id}, Now: l.clock.Now(), Lease: l.lease,
	})
	if err != nil {
		l.log.Log(context.Background(), store.LogLevel(err, slog.LevelError), "heartbeat", "owner", l.owner, "run_id", id, "err", err)
		return false
	}
	return len(hb.Cancel) > 0
}
