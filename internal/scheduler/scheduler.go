package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/clock"
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
	// Worker names this process on the runs it claims: its owner id,
	// unique to the process (owner.Acquire makes one).
	Worker string
	// Workers is how many runs may execute at once; 32 when 0.
	Workers int
	// Lease is how long a claimed run stays this worker's without a
	// heartbeat; 30s when 0. Heartbeats go every Lease/3.
	Lease time.Duration
	// Leases, when set, is the lease keeper this scheduler shares with
	// its executor, which holds the sub-runs it creates with it; its
	// owner and lease replace Worker and Lease. Nil: the scheduler makes
	// its own of Worker and Lease.
	Leases *Leases
	// Liveness tells which owners of running runs are dead, so that their
	// runs are taken over at once (at start, then every Poll) rather than
	// when their leases expire; owner.Dir is one. Nil: leases alone, as
	// for owners on other machines.
	Liveness Liveness
	// KillRunProcesses, when set, kills whatever processes of a run
	// survive, and returns only once none does. The scheduler calls it
	// before it resumes a run taken over from another owner (dead, or
	// stalled past its lease), so that no step of the run executes twice
	// at once; a run it fails to clean is not resumed, and is taken over
	// again once this owner's lease on it expires.
	KillRunProcesses func(ctx context.Context, runID string) error
	// Waker, when set, wakes the dispatcher after the writes that may make
	// a run claimable, of this process or (PostgreSQL) of any other: the
	// store itself when it implements store.Waker.
	Waker store.Waker
	// Placement, when set, makes this scheduler a worker of a deployment
	// (remote mode) of that region and labels: it claims only the runs
	// whose routine's region and labels it meets, and keeps itself in the
	// store's registry of workers (store.WorkerBeat) from Start to
	// Shutdown. Nil: a local daemon, which runs every routine whatever its
	// region and labels say.
	Placement *routine.Placement
	// Poll is how often the idle dispatcher looks for delayed runs, expired
	// leases and dead owners; 1s when 0. New runs wake them at once.
	Poll   time.Duration
	Logger *slog.Logger
	// OnEnd, when set, hears of each run the scheduler ends itself,
	// without the executor (its routine is gone, the executor panicked,
	// a sub-run superseded), which the executor's observers never see.
	OnEnd func(run *routine.Run)
	// Clock times the claims, the leases, the poll and the wake-up of a
	// run requeued for a retry; clock.Real when nil. Give the executor
	// and Leases the same, so that a retry's not-before and the claims
	// that judge it read one time.
	Clock clock.Clock
}

// Liveness tells the scheduler whether the owner of runs (a daemon, a
// run-once) is dead, without waiting for its leases to expire.
type Liveness interface {
	// Dead reports whether owner is known dead; an owner it knows
	// nothing of (on another machine) is not.
	Dead(owner string) bool
	// Forget drops what is known of a dead owner, once its leases ended.
	Forget(owner string)
}

// Scheduler works the queue. Start it once, Shutdown it once.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	stopClaim chan struct{} // closed by Shutdown: claim no more
	runCtx    context.Context
	runCancel context.CancelCauseFunc // cancels runs in flight after the grace, with ErrShutdown
	workers   sync.WaitGroup          // the runs executing; added to by the dispatcher only
	idle      chan struct{}           // closed once the dispatcher stopped and every run returned
	beatsDone chan struct{}           // closed once the beats to the registry of workers stopped; nil: none
	leases    *Leases                 // renews the leases of the runs in flight

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
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Leases == nil {
		cfg.Leases = NewLeases(cfg.Store, cfg.Worker, cfg.Lease, cfg.Clock, cfg.Logger)
	}
	cfg.Worker, cfg.Lease = cfg.Leases.Owner(), cfg.Leases.Lease()
	return &Scheduler{
		cfg:       cfg,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		stopClaim: make(chan struct{}),
		idle:      make(chan struct{}),
		leases:    cfg.Leases,
		inFlight:  map[string]string{},
	}
}

// Wake tells the dispatcher to look at the queue now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts the dispatcher and the heartbeat, and takes over at once
// the runs of dead owners (Liveness). Runs execute under a context of
// their own, cancelled only by Shutdown once its grace is over.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	s.runCtx, s.runCancel = context.WithCancelCause(context.WithoutCancel(ctx))
	s.mu.Unlock()
	go func() {
		s.dispatch()
		s.workers.Wait() // no Add after dispatch returned
		close(s.idle)
	}()
	s.leases.Start(s.cfg.Waker)
	if s.cfg.Placement != nil {
		// In the registry before the first claim.
		s.beat()
		s.beatsDone = make(chan struct{})
		go s.beats()
	}
	go s.poll()
	if s.cfg.Waker != nil {
		ctx, cancel := context.WithCancel(s.runCtx)
		go func() { <-s.stopClaim; cancel() }()
		go func() {
			for range s.cfg.Waker.Wakeups(ctx) {
				s.Wake()
			}
		}()
	}
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
	s.leave()
	select {
	case <-s.idle:
	case <-ctx.Done():
		s.runCancel(ErrShutdown)
		<-s.idle
	}
	s.runCancel(ErrShutdown)
	s.leases.Stop()
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
// within the reservations, starts them, and returns how many it took.
func (s *Scheduler) claim() int {
	limit, exclude, reserved := s.slots()
	if limit == 0 {
		return 0
	}
	groups, groupCeilings := s.cfg.Catalog.Groups()
	runs, err := s.cfg.Store.RunClaim(s.runCtx, &store.RunClaimParams{
		Worker:        s.cfg.Worker,
		Now:           s.cfg.Clock.Now(),
		Lease:         s.cfg.Lease,
		Ceilings:      s.cfg.Catalog.Ceilings(),
		Groups:        groups,
		GroupCeilings: groupCeilings,
		Exclude:       exclude,
		Reserved:      reserved,
		Limit:         limit,
		Placement:     s.cfg.Placement,
	})
	if err != nil {
		s.log.Log(s.runCtx, store.LogLevel(err, slog.LevelError), "claim runs", "err", err)
		return 0
	}
	for _, run := range runs {
		if run.TakenFrom == s.cfg.Worker && s.leases.Holds(run.ID) {
			// This owner's lease on a run it executes ran out (its
			// heartbeats could not reach the store) and its own claim
			// took the run back, renewing the lease: the execution goes
			// on, and a second one would run its steps twice. Nothing
			// is lost, and why the heartbeats failed is logged where
			// they did: info.
			s.log.Info("lease ran out on a run executing here; renewed by a claim, the execution goes on", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine)
			continue
		}
		s.track(run.ID, run.Routine)
		ctx, release := s.leases.Hold(s.runCtx, run.ID)
		s.workers.Add(1)
		go s.execute(ctx, run, release)
	}
	return len(runs)
}

// poll takes over the runs of dead owners and wakes the dispatcher at
// once, then every Poll interval, for the runs no event announces:
// delayed runs coming due, runs whose lease expired, runs of owners that
// died since.
func (s *Scheduler) poll() {
	for {
		s.reap()
		s.Wake()
		t := s.cfg.Clock.NewTimer(s.cfg.Poll)
		select {
		case <-t.C():
		case <-s.stopClaim:
			t.Stop()
			return
		}
	}
}

// beatEvery is how often a worker of a deployment renews its entry in
// the registry of workers: three times within store.WorkerTimeout, so
// that one late or lost beat does not make it look dead.
const beatEvery = store.WorkerTimeout / 3

// beats renews the worker's entry in the registry until Shutdown.
func (s *Scheduler) beats() {
	defer close(s.beatsDone)
	for {
		t := s.cfg.Clock.NewTimer(beatEvery)
		select {
		case <-t.C():
			s.beat()
		case <-s.stopClaim:
			t.Stop()
			return
		}
	}
}

// beat records in the registry that this worker is alive, with its
// placement and slots.
func (s *Scheduler) beat() {
	if err := s.cfg.Store.WorkerBeat(s.runCtx, &store.WorkerBeatParams{
		ID: s.cfg.Worker, Placement: *s.cfg.Placement, Slots: s.cfg.Workers, Now: s.cfg.Clock.Now(),
	}); err != nil {
		s.log.Error("record this worker in the registry of workers", "worker", s.cfg.Worker, "err", err)
	}
}

// leave takes the worker out of the registry as it stops claiming, so
// that nobody counts on it for runs any more; a beat under way lands
// first.
func (s *Scheduler) leave() {
	if s.beatsDone == nil {
		return
	}
	<-s.beatsDone
	if _, err := s.cfg.Store.WorkerLeave(s.runCtx, s.cfg.Worker); err != nil {
		s.log.Error("leave the registry of workers", "worker", s.cfg.Worker, "err", err)
	}
}

// reap ends the leases of the runs held by owners known dead, so that
// the next claim takes them over.
func (s *Scheduler) reap() {
	if s.cfg.Liveness == nil {
		return
	}
	ctx := s.runCtx
	holders, err := s.cfg.Store.RunHolders(ctx)
	if err != nil {
		s.log.Error("list owners of running runs", "err", err)
		return
	}
	for _, h := range holders {
		if h == s.cfg.Worker || !s.cfg.Liveness.Dead(h) {
			continue
		}
		n, err := s.cfg.Store.RunExpire(ctx, &store.RunExpireParams{Worker: h, Now: s.cfg.Clock.Now()})
		if err != nil {
			s.log.Log(ctx, store.LogLevel(err, slog.LevelError), "end the leases of a dead owner", "owner", h, "err", err)
			continue
		}
		s.cfg.Liveness.Forget(h)
		s.log.Info("owner of running runs is dead: taking them over", "owner", h, "runs", n)
	}
}

// execute runs one claimed run in its own goroutine, under ctx (its
// hold's), then frees its slot and wakes the dispatcher: the slot is free
// before the wake-up, so the dispatcher cannot find it taken and sleep
// through it.
func (s *Scheduler) execute(ctx context.Context, run *store.ClaimedRun, release func()) {
	defer s.workers.Done()
	defer s.ended(run.ID)
	s.executeRun(ctx, run)
	release()
	s.track(run.ID, "")
	s.Wake()
}

// executeRun runs one claimed run with the engine under ctx, and puts it
// back in the queue when it waits for a retry or was cut short by the
// shutdown or the loss of its lease. A run taken over from another owner
// is first rid of that owner's processes; a run resumed whose cancel was
// requested meanwhile ends cancelled instead.
func (s *Scheduler) executeRun(ctx context.Context, c *store.ClaimedRun) {
	run := c.Run
	if c.TakenFrom != "" && !s.killSurvivors(c) {
		return
	}
	if (c.TakenFrom != "" || run.Attempt > 0) && s.leases.cancelRequested(run.ID) {
		s.cancelResumed(run)
		return
	}
	if c.TakenFrom != "" {
		if run.Trigger.Kind == routine.TriggerRoutine {
			s.supersede(c)
			return
		}
		s.log.Info("resuming a run taken over", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "from", c.TakenFrom, "attempt", run.Attempt)
	}
	r, err := s.cfg.Catalog.Routine(s.runCtx, run.Routine, run.Revision)
	if errors.Is(err, routine.ErrNotFound) {
		s.fail(run, routine.CodeInvalidRoutine, fmt.Sprintf("routine %q is not in the project any more (its routine.yaml was removed or renamed)", run.Routine))
		s.log.Warn("run failed: unknown routine", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine)
		return
	}
	if err != nil {
		// The revision could not be fetched now (the store is down): the
		// run goes back to the queue, to be tried again shortly.
		s.log.Error("load the routine of a run; requeued", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "revision", run.Revision, "err", err)
		s.requeue(run, s.cfg.Clock.Now().Add(loadRetry))
		return
	}
	done, err := s.executeGuarded(ctx, r, run)
	var rq interface{ RequeueAt() time.Time }
	var p *panicked
	switch {
	case errors.As(err, &p):
		s.fail(run, routine.CodeInternal, fmt.Sprintf("the engine panicked: %v", p.value))
	case errors.As(err, &rq):
		s.requeue(run, rq.RequeueAt())
	case errors.Is(err, routine.ErrConflict):
		s.log.Warn("run taken over by another worker after this one's lease expired; its attempt here stopped",
			"run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "err", err)
	case err != nil:
		s.log.Log(ctx, store.LogLevel(err, slog.LevelError), "execute run", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "err", err)
	case done.State == routine.StateRunning, // handed back by the engine
		done.State == routine.StateCancelled && (s.runCtx.Err() != nil || errors.Is(context.Cause(ctx), ErrLeaseLost)):
		s.interrupted(done)
	}
}

// loadRetry is how long a run whose routine could not be loaded waits in
// the queue before it is tried again.
const loadRetry = 5 * time.Second

// interrupted puts a run the shutdown (or the loss of its lease) cut
// short back in the queue, as it was before it started: running, then
// requeued by the worker that holds it. Its step records stay: the next
// attempt resumes after them. A run another worker took over meanwhile is
// left to it (the write is refused).
func (s *Scheduler) interrupted(run *routine.Run) {
	ctx := context.Background()
	run.State = routine.StateRunning
	run.FinishedAt = nil
	run.Error = nil
	if err := s.cfg.Store.RunUpdate(ctx, run); err != nil {
		s.log.Log(ctx, store.LogLevel(err, slog.LevelError), "keep interrupted run", "run_id", run.ID, "trace_id", run.TraceID, "err", err)
		return
	}
	if err := s.cfg.Store.RunRequeue(ctx, &store.RunRequeueParams{ID: run.ID, Worker: s.cfg.Worker}); err != nil {
		// Still running with its lease: it is reclaimed once the lease expires.
		s.log.Log(ctx, store.LogLevel(err, slog.LevelError), "requeue interrupted run", "run_id", run.ID, "trace_id", run.TraceID, "err", err)
		return
	}
	s.log.Info("run interrupted by shutdown; queued to resume", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine)
}

// requeue puts back in the queue a run whose step waits for a retry due
// at `at` (the executor's long-backoff requeue), and wakes the dispatcher then.
// The slot is free in the meantime.
func (s *Scheduler) requeue(run *routine.Run, at time.Time) {
	at = at.UTC()
	if err := s.cfg.Store.RunRequeue(context.Background(), &store.RunRequeueParams{ID: run.ID, Worker: s.cfg.Worker, NotBefore: &at, Now: s.cfg.Clock.Now()}); err != nil {
		// Still running with its lease: it is reclaimed once the lease expires.
		s.log.Log(context.Background(), store.LogLevel(err, slog.LevelError), "requeue run for its retry", "run_id", run.ID, "trace_id", run.TraceID, "err", err)
		return
	}
	s.log.Info("run requeued for a retry", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "not_before", at)
	s.cfg.Clock.AfterFunc(at.Sub(s.cfg.Clock.Now())+time.Millisecond, s.Wake)
}

// panicked is the error of an execution that panicked.
type panicked struct{ value any }

func (p *panicked) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// executeGuarded executes a run and turns a panic of the executor on this
// goroutine (a bug, or a secret provider's) into an error, its stack in
// the log: one run fails, the daemon and the other runs go on.
func (s *Scheduler) executeGuarded(ctx context.Context, r *routine.Routine, run *routine.Run) (done *routine.Run, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("run execution panicked", "run_id", run.ID, "trace_id", run.TraceID, "routine", run.Routine, "panic", v, "stack", string(debug.Stack()))
			err = &panicked{v}
		}
	}()
	return s.cfg.Executor.Execute(ctx, r, run)
}

// killSurvivors kills what is left of the processes of a run taken over,
// and reports whether the run may resume.
func (s *Scheduler) killSurvivors(c *store.ClaimedRun) bool {
	if s.cfg.KillRunProcesses == nil {
		return true
	}
	if err := s.cfg.KillRunProcesses(s.runCtx, c.ID); err != nil {
		s.log.Error("kill the processes left of a run taken over; not resuming it until this owner's lease on it expires",
			"run_id", c.ID, "trace_id", c.TraceID, "routine", c.Routine, "from", c.TakenFrom, "err", err)
		return false
	}
	return true
}

// supersede ends a sub-run taken over from a dead owner, cancelled: its
// caller, taken over with it, resumes at the routine step that called it
// and calls the routine again, so this one's result would be nobody's.
func (s *Scheduler) supersede(c *store.ClaimedRun) {
	s.log.Info("sub-run of a dead owner ended: its caller calls the routine again when it resumes", "run_id", c.ID, "trace_id", c.TraceID, "routine", c.Routine, "from", c.TakenFrom)
	s.end(c.Run, routine.StateCancelled, routine.CodeCancelled,
		fmt.Sprintf("its owner %s died; the calling run resumes at its routine step, which calls the routine again", c.TakenFrom))
}

// cancelResumed ends cancelled a run taken back (from a dead owner, or
// from the queue) whose cancel was requested before it could stop: its
// processes are gone (killSurvivors), and the steps it had not finished
// are recorded cancelled with it.
func (s *Scheduler) cancelResumed(run *routine.Run) {
	ctx := context.Background()
	now := s.cfg.Clock.Now().UTC()
	steps, err := s.cfg.Store.StepList(ctx, run.ID)
	if err != nil {
		s.log.Error("list the steps of a cancelled run", "run_id", run.ID, "err", err)
	}
	var unfinished []*routine.StepRun
	for _, st := range steps {
		if !st.State.Final() {
			st.State, st.FinishedAt = routine.StateCancelled, &now
			unfinished = append(unfinished, st)
		}
	}
	run.State, run.FinishedAt = routine.StateCancelled, &now
	if run.StartedAt == nil {
		run.StartedAt = &now
	}
	run.Error = &routine.ErrorPayload{Code: routine.CodeCancelled, Message: ErrCancelRequested.Error(), RunID: run.ID}
	if err := s.cfg.Store.Checkpoint(ctx, &store.CheckpointParams{Run: run, RunID: run.ID, Holder: run.Worker, Steps: unfinished}); err != nil {
		s.log.Log(ctx, store.LogLevel(err, slog.LevelError), "end a cancelled run", "run_id", run.ID, "err", err)
		return
	}
	s.log.Info("run cancelled rather than resumed: its cancel was requested", "run_id", run.ID, "routine", run.Routine)
}

// fail ends a run failed, with an error payload of code and msg.
func (s *Scheduler) fail(run *routine.Run, code, msg string) {
	s.end(run, routine.StateFailed, code, msg)
}

// end records a run's end in state, with an error payload of code and msg.
func (s *Scheduler) end(run *routine.Run, state routine.State, code, msg string) {
	now := s.cfg.Clock.Now().UTC()
	run.State = state
	if run.StartedAt == nil {
		run.StartedAt = &now
	}
	run.FinishedAt = &now
	run.Error = &routine.ErrorPayload{Code: code, Message: msg, RunID: run.ID}
	if err := s.cfg.Store.RunUpdate(context.Background(), run); err != nil {
		s.log.Log(context.Background(), store.LogLevel(err, slog.LevelError), "end run", "run_id", run.ID, "trace_id", run.TraceID, "state", state, "err", err)
		return
	}
	if s.cfg.OnEnd != nil {
		s.cfg.OnEnd(run)
	}
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

// Slots returns how many runs this scheduler executes at once at most
// (Config.Workers) and how many it executes now.
func (s *Scheduler) Slots() (total, busy int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Workers, len(s.inFlight)
}

// slots returns how many runs the dispatcher may claim now, and which
// routines to leave out, given the free workers and the
// concurrency.reserved of routines. A worker of a deployment claims as
// many runs as it has free workers, and leaves the reservations to the
// claim (reserved), which keeps them across the fleet. A local daemon
// keeps them in its own workers: the workers free beyond the sum of
// unmet reservations (reserved minus running here, of each routine with
// a reservation) may take any routine's runs; when no worker is free
// beyond them, one run is claimed at a time, of the routines with an
// unmet reservation only.
func (s *Scheduler) slots() (limit int, exclude []string, reserved map[string]int) {
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
	switch {
	case free <= 0:
		return 0, nil, nil
	case s.cfg.Placement != nil:
		return free, nil, res
	}
	unmet := 0
	for name, n := range res {
		unmet += max(0, n-running[name])
	}
	if free > unmet {
		return free - unmet, nil, nil
	}
	for _, r := range s.cfg.Catalog.All() {
		if res[r.Name]-running[r.Name] <= 0 {
			exclude = append(exclude, r.Name)
		}
	}
	return 1, exclude, nil
}

// Active reports whether a run of the routine is queued or running, for
// the overlap: skip option of schedules.
func (s *Scheduler) Active(name string) bool {
	return Active(context.Background(), s.cfg.Store, name)
}

// Active reports whether a run of the routine name is queued or running
// in st.
func Active(ctx context.Context, st store.Store, name string) bool {
	n, err := st.RunCount(ctx, &store.RunCountParams{
		Routine: name, States: []routine.State{routine.StateQueued, routine.StateRunning},
	})
	return err == nil && (n[routine.StateQueued]+n[routine.StateRunning]) > 0
}

// LastFire returns when the routine last got a run from a trigger of this
// kind: the newest such run's queue time, or the zero time.
func (s *Scheduler) LastFire(name, kind string) time.Time {
	return LastFire(context.Background(), s.cfg.Store, name, kind)
}

// LastFire is when a trigger of kind last queued a run of the routine
// name, among its 200 newest runs; zero when none did.
func LastFire(ctx context.Context, st store.Store, name, kind string) time.Time {
	runs, err := st.RunList(ctx, &store.RunListParams{Routine: name, Limit: 200})
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
