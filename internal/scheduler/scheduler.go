package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Executor runs one claimed run to its final state; *engine.Engine is one.
type Executor interface {
	Execute(ctx context.Context, r *routine.Routine, run *routine.Run) (*routine.Run, error)
}

// Config is what a Scheduler is built from. Store, Executor, Catalog and
// Worker are required.
type Config struct {
	Store    store.Store
	Executor Executor
	Catalog  *Catalog
	// Worker names this process on the runs it claims (host:pid).
	Worker string
	// Workers is how many runs may execute at once; 8 when 0.
	Workers int
	// Lease is how long a claimed run stays this worker's without a
	// heartbeat; 30s when 0. Heartbeats go every Lease/3.
	Lease time.Duration
	// Poll is how often idle workers look for delayed runs and expired
	// leases; 1s when 0. New runs wake them at once.
	Poll   time.Duration
	Logger *slog.Logger
}

// Scheduler works the queue. Start it once, Shutdown it once.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	stopClaim chan struct{} // closed by Shutdown: claim no more
	runCtx    context.Context
	runCancel context.CancelFunc // cancels runs in flight after the grace
	workers   sync.WaitGroup
	hbDone    chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool
	stopping bool
}

// New returns a scheduler; nothing runs before Start.
func New(cfg Config) *Scheduler {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg:       cfg,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		stopClaim: make(chan struct{}),
		hbDone:    make(chan struct{}),
		inFlight:  map[string]bool{},
	}
}

// Enqueue records a queued run of r, durably, and wakes a worker. The run
// is in the store when Enqueue returns.
func (s *Scheduler) Enqueue(ctx context.Context, r *routine.Routine, trig routine.TriggerInfo, input map[string]string) (*routine.Run, error) {
	run, err := s.cfg.Store.RunCreate(ctx, &store.RunCreateParams{
		ID:       ulid.Make().String(),
		Routine:  r.Name,
		Revision: r.Revision,
		Trigger:  trig,
		Input:    input,
		Tags:     r.Tags,
		QueuedAt: time.Now().UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("queue run: %w", err)
	}
	s.log.Info("run queued", "run_id", run.ID, "routine", r.Name, "trigger", trig.Kind)
	s.Wake()
	return run, nil
}

// Wake tells an idle worker to look at the queue now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts the workers and the heartbeat. Runs execute under a
// context of their own, cancelled only by Shutdown once its grace is over.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.runCtx, s.runCancel = context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Unlock()
	for range s.cfg.Workers {
		s.workers.Add(1)
		go s.work()
	}
	go s.heartbeat()
	go s.poll()
	s.Wake()
}

// Shutdown stops claiming, waits for the runs in flight until ctx ends
// (the grace period), then cancels them and waits for them to return.
// A run cut short this way is put back in the queue, its finished steps
// checkpointed, so the next daemon resumes it at its first unfinished step.
func (s *Scheduler) Shutdown(ctx context.Context) {
	s.mu.Lock()
	if s.stopping || s.runCancel == nil { // stopped already, or never started
		s.mu.Unlock()
		return
	}
	s.stopping = true
	s.mu.Unlock()
	close(s.stopClaim)
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.runCancel()
		<-done
	}
	s.runCancel()
	<-s.hbDone
}

func (s *Scheduler) stopped() bool {
	select {
	case <-s.stopClaim:
		return true
	default:
		return false
	}
}

// work is one worker: claim, execute, repeat; sleep when there is nothing
// to claim until woken. A worker that claimed a run passes the wake-up on,
// so one signal reaches as many idle workers as there are runs to take.
func (s *Scheduler) work() {
	defer s.workers.Done()
	for !s.stopped() {
		run, err := s.cfg.Store.RunClaim(s.runCtx, &store.RunClaimParams{
			Worker:   s.cfg.Worker,
			Now:      time.Now(),
			Lease:    s.cfg.Lease,
			Ceilings: s.cfg.Catalog.Ceilings(),
		})
		if err == nil {
			s.Wake() // there may be more: pass the wake-up on to another idle worker
			s.execute(run)
			continue
		}
		if !errors.Is(err, routine.ErrNotFound) {
			s.log.Error("claim run", "err", err)
		}
		select {
		case <-s.wake:
		case <-s.stopClaim:
			return
		}
	}
}

// poll wakes a worker every Poll interval, for the runs no event
// announces: delayed runs coming due and runs whose lease expired.
func (s *Scheduler) poll() {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.Wake()
		case <-s.stopClaim:
			return
		}
	}
}

// execute runs one claimed run with the engine.
func (s *Scheduler) execute(run *routine.Run) {
	r, ok := s.cfg.Catalog.Get(run.Routine)
	if !ok {
		s.failUnknown(run)
		return
	}
	s.track(run.ID, true)
	defer s.track(run.ID, false)
	done, err := s.cfg.Executor.Execute(s.runCtx, r, run)
	if err != nil {
		s.log.Error("execute run", "run_id", run.ID, "routine", run.Routine, "err", err)
		return
	}
	if done.State == routine.StateCancelled && s.runCtx.Err() != nil {
		s.interrupted(done)
		return
	}
	// A run finished: a slot of its routine is free for a waiting run.
	s.Wake()
}

// interrupted puts a run the shutdown cut short back in the queue, as it
// was before it started: running, then requeued by the worker that holds
// it. Its step records stay: the next attempt resumes after them.
func (s *Scheduler) interrupted(run *routine.Run) {
	ctx := context.Background()
	run.State = routine.StateRunning
	run.FinishedAt = nil
	run.Error = nil
	if err := s.cfg.Store.RunUpdate(ctx, run); err != nil {
		s.log.Error("keep interrupted run", "run_id", run.ID, "err", err)
		return
	}
	if err := s.cfg.Store.RunRequeue(ctx, &store.RunRequeueParams{ID: run.ID, Worker: s.cfg.Worker}); err != nil {
		// Still running with its lease: it is reclaimed once the lease expires.
		s.log.Error("requeue interrupted run", "run_id", run.ID, "err", err)
		return
	}
	s.log.Info("run interrupted by shutdown; queued to resume", "run_id", run.ID, "routine", run.Routine)
}

// failUnknown ends a run whose routine the daemon no longer knows.
func (s *Scheduler) failUnknown(run *routine.Run) {
	now := time.Now().UTC()
	run.State = routine.StateFailed
	if run.StartedAt == nil {
		run.StartedAt = &now
	}
	run.FinishedAt = &now
	run.Error = &routine.ErrorPayload{
		Code:    routine.CodeInvalidRoutine,
		Message: fmt.Sprintf("routine %q is not in the project any more (its routine.yaml was removed or renamed)", run.Routine),
		RunID:   run.ID,
	}
	if err := s.cfg.Store.RunUpdate(context.Background(), run); err != nil {
		s.log.Error("fail run of unknown routine", "run_id", run.ID, "err", err)
	}
	s.log.Warn("run failed: unknown routine", "run_id", run.ID, "routine", run.Routine)
}

func (s *Scheduler) track(id string, on bool) {
	s.mu.Lock()
	if on {
		s.inFlight[id] = true
	} else {
		delete(s.inFlight, id)
	}
	s.mu.Unlock()
}

// heartbeat renews the leases of the runs in flight every Lease/3 until
// the workers have returned.
func (s *Scheduler) heartbeat() {
	defer close(s.hbDone)
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	t := time.NewTicker(s.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.inFlight))
		for id := range s.inFlight {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		if _, err := s.cfg.Store.RunHeartbeat(context.Background(), &store.RunHeartbeatParams{
			Worker: s.cfg.Worker, IDs: ids, Now: time.Now(), Lease: s.cfg.Lease,
		}); err != nil {
			s.log.Error("heartbeat", "err", err)
		}
	}
}

// Active reports whether a run of the routine is queued or running, for
// the overlap: skip option of schedules.
func (s *Scheduler) Active(name string) bool {
	n, err := s.cfg.Store.RunCount(context.Background(), &store.RunCountParams{
		Routine: name, States: []routine.State{routine.StateQueued, routine.StateRunning},
	})
	return err == nil && (n[routine.StateQueued]+n[routine.StateRunning]) > 0
}

// LastFire returns when the routine last got a run from a trigger of this
// kind: the newest such run's queue time, or the zero time.
func (s *Scheduler) LastFire(name, kind string) time.Time {
	runs, err := s.cfg.Store.RunList(context.Background(), &store.RunListParams{Routine: name, Limit: 200})
	if err != nil {
		return time.Time{}
	}
	for _, r := range runs {
		if r.Trigger.Kind == kind {
			return r.QueuedAt
		}
	}
	return time.Time{}
}
