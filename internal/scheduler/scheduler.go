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
	// Workers is how many runs may execute at once; 32 when 0.
	Workers int
	// Lease is how long a claimed run stays this worker's without a
	// heartbeat; 30s when 0. Heartbeats go every Lease/3.
	Lease time.Duration
	// Poll is how often the idle dispatcher looks for delayed runs and expired
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
	workers   sync.WaitGroup     // the runs executing; added to by the dispatcher only
	idle      chan struct{}      // closed once the dispatcher stopped and every run returned
	hbDone    chan struct{}

	mu       sync.Mutex
	inFlight map[string]string // run id → routine, of the runs executing here
	stopping bool
	watchers map[string][]chan struct{} // run id → channels closed when an execution of it ends
}

// New returns a scheduler; nothing runs before Start.
func New(cfg Config) *Scheduler {
	if cfg.Workers <= 0 {
		cfg.Workers = 32
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
		idle:      make(chan struct{}),
		hbDone:    make(chan struct{}),
		inFlight:  map[string]string{},
	}
}

// Enqueue records a queued run of r, durably, and wakes the dispatcher. The run
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

// Wake tells the dispatcher to look at the queue now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts the dispatcher and the heartbeat. Runs execute under a
// context of their own, cancelled only by Shutdown once its grace is over.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.runCtx, s.runCancel = context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Unlock()
	go func() {
		s.dispatch()
		s.workers.Wait() // no Add after dispatch returned
		close(s.idle)
	}()
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
	select {
	case <-s.idle:
	case <-ctx.Done():
		s.runCancel()
		<-s.idle
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

// dispatch claims runs for the free workers and starts each in a goroutine
// of its own, until Shutdown; with nothing to claim, or no worker free, it
// sleeps until woken (a run queued or ended, the poll).
func (s *Scheduler) dispatch() {
	for !s.stopped() {
		if s.claim() > 0 {
			continue // there may be more, and workers still free
		}
		select {
		case <-s.wake:
		case <-s.stopClaim:
			return
		}
	}
}

// claim takes, in one store call, as many runs as there are free workers
// within the reservations, starts them, and returns how many it started.
func (s *Scheduler) claim() int {
	limit, exclude := s.slots()
	if limit == 0 {
		return 0
	}
	runs, err := s.cfg.Store.RunClaim(s.runCtx, &store.RunClaimParams{
		Worker:   s.cfg.Worker,
		Now:      time.Now(),
		Lease:    s.cfg.Lease,
		Ceilings: s.cfg.Catalog.Ceilings(),
		Exclude:  exclude,
		Limit:    limit,
	})
	if err != nil {
		s.log.Error("claim runs", "err", err)
		return 0
	}
	for _, run := range runs {
		s.track(run.ID, run.Routine)
		s.workers.Add(1)
		go s.execute(run)
	}
	return len(runs)
}

// poll wakes the dispatcher every Poll interval, for the runs no event
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

// execute runs one claimed run in its own goroutine, then frees its slot
// and wakes the dispatcher: the slot is free before the wake-up, so the
// dispatcher cannot find it taken and sleep through it.
func (s *Scheduler) execute(run *routine.Run) {
	defer s.workers.Done()
	defer s.ended(run.ID)
	s.executeRun(run)
	s.track(run.ID, "")
	s.Wake()
}

// executeRun runs one claimed run with the engine, and puts it back in
// the queue when it waits for a retry or was cut short by the shutdown.
func (s *Scheduler) executeRun(run *routine.Run) {
	r, ok := s.cfg.Catalog.Get(run.Routine)
	if !ok {
		s.failUnknown(run)
		return
	}
	done, err := s.cfg.Executor.Execute(s.runCtx, r, run)
	var rq interface{ RequeueAt() time.Time }
	switch {
	case errors.As(err, &rq):
		s.requeue(run, rq.RequeueAt())
	case errors.Is(err, routine.ErrConflict):
		s.log.Warn("run taken over by another worker after this one's lease expired; its attempt here stopped",
			"run_id", run.ID, "routine", run.Routine, "err", err)
	case err != nil:
		s.log.Error("execute run", "run_id", run.ID, "routine", run.Routine, "err", err)
	case done.State == routine.StateCancelled && s.runCtx.Err() != nil:
		s.interrupted(done)
	}
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

// requeue puts back in the queue a run whose step waits for a retry due
// at `at` (the executor's long-backoff requeue), and wakes the dispatcher then.
// The slot is free in the meantime.
func (s *Scheduler) requeue(run *routine.Run, at time.Time) {
	at = at.UTC()
	if err := s.cfg.Store.RunRequeue(context.Background(), &store.RunRequeueParams{ID: run.ID, Worker: s.cfg.Worker, NotBefore: &at}); err != nil {
		// Still running with its lease: it is reclaimed once the lease expires.
		s.log.Error("requeue run for its retry", "run_id", run.ID, "err", err)
		return
	}
	s.log.Info("run requeued for a retry", "run_id", run.ID, "routine", run.Routine, "not_before", at)
	time.AfterFunc(time.Until(at)+time.Millisecond, s.Wake)
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

// Watch returns a channel closed when an execution of run id in this
// process ends (the run finished, or went back to the queue), so a caller
// waiting for a run need not poll; stop releases the channel. Check the
// run's state after calling Watch: it may have ended before.
func (s *Scheduler) Watch(id string) (ended <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	if s.watchers == nil {
		s.watchers = map[string][]chan struct{}{}
	}
	s.watchers[id] = append(s.watchers[id], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		list := s.watchers[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(s.watchers, id)
		} else {
			s.watchers[id] = list
		}
	}
}

// ended wakes the watchers of a run whose execution returned.
func (s *Scheduler) ended(id string) {
	s.mu.Lock()
	list := s.watchers[id]
	delete(s.watchers, id)
	s.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// track records a run executing here (of routine name), or forgets it
// when name is "".
func (s *Scheduler) track(id, name string) {
	s.mu.Lock()
	if name != "" {
		s.inFlight[id] = name
	} else {
		delete(s.inFlight, id)
	}
	s.mu.Unlock()
}

// slots returns how many runs the dispatcher may claim now, and which
// routines to leave out, given the free workers and the
// concurrency.reserved of routines: the workers free beyond the sum of
// unmet reservations (reserved minus running here, of each routine with a
// reservation) may take any routine's runs. When no worker is free beyond
// them, one run is claimed at a time, of the routines with an unmet
// reservation only.
func (s *Scheduler) slots() (limit int, exclude []string) {
	res := s.cfg.Catalog.Reservations()
	s.mu.Lock()
	free := s.cfg.Workers - len(s.inFlight)
	running := make(map[string]int, len(res))
	for _, name := range s.inFlight {
		if _, ok := res[name]; ok {
			running[name]++
		}
	}
	s.mu.Unlock()
	if free <= 0 {
		return 0, nil
	}
	unmet := 0
	for name, n := range res {
		unmet += max(0, n-running[name])
	}
	if free > unmet {
		return free - unmet, nil
	}
	for _, r := range s.cfg.Catalog.All() {
		if res[r.Name]-running[r.Name] <= 0 {
			exclude = append(exclude, r.Name)
		}
	}
	return 1, exclude
}

// heartbeat renews the leases of the runs in flight every Lease/3 until
// the scheduler is idle after Shutdown.
func (s *Scheduler) heartbeat() {
	defer close(s.hbDone)
	t := time.NewTicker(s.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.idle:
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
