package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/store"
)

// Leases renews, every Lease/3 and in one store call, the leases of the
// runs an owner executes: the runs a scheduler claimed, a run-once's run,
// and the sub-runs they call. A run is renewed while it is held; one
// whose execution ended without releasing it (a store failure) is not,
// so its lease expires and it is taken over. Start it once, Stop it once.
type Leases struct {
	store store.Store
	owner string
	lease time.Duration
	clock clock.Clock
	log   *slog.Logger

	mu    sync.Mutex
	held  map[string]int // run id → holds not yet released
	stop  chan struct{}
	done  chan struct{}
	start sync.Once
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
		held: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Owner returns the owner whose leases these are.
func (l *Leases) Owner() string { return l.owner }

// Lease returns how long a lease lasts without renewal.
func (l *Leases) Lease() time.Duration { return l.lease }

// Hold renews the lease of run id until release is called.
func (l *Leases) Hold(id string) (release func()) {
	l.mu.Lock()
	l.held[id]++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.held[id]--; l.held[id] <= 0 {
				delete(l.held, id)
			}
			l.mu.Unlock()
		})
	}
}

// Holds reports whether run id is held: executed by this owner, or a
// sub-run of one.
func (l *Leases) Holds(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[id] > 0
}

// Start starts the heartbeat.
func (l *Leases) Start() {
	l.start.Do(func() { go l.loop() })
}

// Stop stops the heartbeat and waits for it.
func (l *Leases) Stop() {
	close(l.stop)
	l.start.Do(func() { close(l.done) }) // never started
	<-l.done
}

func (l *Leases) loop() {
	defer close(l.done)
	for {
		t := l.clock.NewTimer(l.lease / 3)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C():
		}
		l.renew()
	}
}

// renew extends the leases of the runs held now.
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
	if _, err := l.store.RunHeartbeat(context.Background(), &store.RunHeartbeatParams{
		Worker: l.owner, IDs: ids, Now: l.clock.Now(), Lease: l.lease,
	}); err != nil {
		l.log.Error("heartbeat", "owner", l.owner, "err", err)
	}
}
