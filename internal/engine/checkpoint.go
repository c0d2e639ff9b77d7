package engine

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// checkpointer writes the run record, step records and log lines of one
// run, one transaction at a time. What queues up while a write is under
// way goes into the next transaction. A step's final record must be
// written before the next step starts (settle), so it, its last log lines,
// the next step's start and, after the last step, the run's final record
// usually cost one commit, and parallel steps share commits: a one-step
// run costs one commit from its start to its end. Records are written in
// the order they were queued. A goroutine that must wait for its record
// writes the batch itself when no write is under way (no hand-off to
// another goroutine on the hot path); a background loop writes what waits
// without anyone waiting for it.
type checkpointer struct {
	// ctx is for every write: it outlives the run's cancellation, so the
	// records of a cancelled run are kept.
	ctx context.Context
	// hurry ends when the daemon stops waiting for the run (its shutdown
	// grace is over): a failing write is then tried commitTries times
	// only, not for commitPatience.
	hurry context.Context
	// patience is commitPatience but in tests.
	patience time.Duration
	store    store.Store
	logger   *slog.Logger
	runID    string
	holder   string // the worker that must still hold the run; "" for a run in the foreground
	// traceID is the run's, for the log lines about it.
	traceID string

	mu      sync.Mutex
	done    *sync.Cond   // signalled after each write
	run     *routine.Run // a copy of the run record to write, or nil
	steps   []*routine.StepRun
	index   map[stepKey]int // position of a queued step in steps
	logs    []routine.LogLine
	queued  uint64 // tickets handed out
	written uint64 // tickets written (or failed)
	writing bool   // a goroutine is writing a batch
	barrier uint64 // ticket of the last final step record: settle waits for it
	lastErr error  // of the last batch written
	lost    error  // set once a write found the run held by another worker
	// recovered is set by a batch written after the store failed it,
	// until settle confirms the run is still this worker's.
	recovered bool
	// confirm, when set, renews the run's lease after the store came back
	// and fails, wrapping ErrConflict, when the run is no longer this
	// worker's: its lease may have run out meanwhile.
	confirm func() error
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

type stepKey struct {
	phase routine.Phase
	id    string
}

// newCheckpointer starts the writer; ctx is used for every write, so it
// should outlive the run's cancellation; hurry is the run's context.
func newCheckpointer(ctx, hurry context.Context, st store.Store, logger *slog.Logger, runID, holder string) *checkpointer {
	c := &checkpointer{
		ctx:      ctx,
		hurry:    hurry,
		patience: commitPatience,
		store:    st,
		logger:   logger,
		runID:    runID,
		holder:   holder,
		index:    map[stepKey]int{},
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	c.done = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

// step queues a copy of rec and returns the ticket to wait for with sync.
// A record queued twice before it is written is written once, as last
// queued, at its first place. Nobody waiting, it is written by the next
// sync or within logFlushEvery.
func (c *checkpointer) step(rec *routine.StepRun) uint64 {
	cp := *rec
	c.mu.Lock()
	k := stepKey{rec.Phase, rec.ID}
	if i, ok := c.index[k]; ok {
		c.steps[i] = &cp
	} else {
		c.index[k] = len(c.steps)
		c.steps = append(c.steps, &cp)
	}
	c.queued++
	t := c.queued
	c.mu.Unlock()
	return t
}

// finished queues the final record of a step, which the next step to start
// waits for (settle).
func (c *checkpointer) finished(rec *routine.StepRun) {
	t := c.step(rec)
	c.mu.Lock()
	c.barrier = max(c.barrier, t)
	c.mu.Unlock()
}

// settle waits until the final records of the steps that finished are
// written: a step starts only then, so a run resumed after a crash never
// runs again a step that finished. It returns an error wrapping
// ErrConflict once the run is found held by another worker: this worker's
// lease expired and the run resumed elsewhere, so no step may start here.
func (c *checkpointer) settle() error {
	c.mu.Lock()
	t := c.barrier
	c.mu.Unlock()
	c.sync(t)
	c.mu.Lock()
	lost, recovered := c.lost, c.recovered
	c.recovered = false
	c.mu.Unlock()
	if lost != nil || !recovered || c.confirm == nil {
		return lost
	}
	// The store was down: the lease may have run out, and a claim may take
	// the run over now. Renewed first, the next step runs here alone.
	if err := c.confirm(); err != nil {
		c.mu.Lock()
		c.lost = err
		c.mu.Unlock()
		return err
	}
	return nil
}

// runRecord queues a copy of the run record, written with the next batch,
// before the step records: a record queued twice before it is written is
// written once, as last queued.
func (c *checkpointer) runRecord(run *routine.Run) {
	cp := *run
	c.mu.Lock()
	c.run = &cp
	c.queued++
	c.mu.Unlock()
}

// log queues a line. Lines are written with the next step record, when
// logFlushLines of them wait, or every logFlushEvery.
func (c *checkpointer) log(line routine.LogLine) {
	c.mu.Lock()
	c.logs = append(c.logs, line)
	c.queued++
	full := len(c.logs) >= logFlushLines
	c.mu.Unlock()
	if full {
		c.poke()
	}
}

// ticket is the ticket of the last thing queued.
func (c *checkpointer) ticket() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

func (c *checkpointer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sync waits until the record of ticket t (and everything queued before
// it) has been written, writing it itself when nobody else is.
func (c *checkpointer) sync(t uint64) {
	c.mu.Lock()
	for c.written < t {
		if c.writing {
			c.done.Wait()
			continue
		}
		c.writeLocked()
	}
	c.mu.Unlock()
}

// close writes what is queued, stops the writer, and returns the error of
// the last batch, the one that holds what was queued last.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *checkpointer) loop() {
	defer close(c.stopped)
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.wake:
		case <-tick.C:
		case <-c.stop:
			c.sync(c.ticket())
			return
		}
		c.write()
	}
}

// write commits what is queued, unless another goroutine is writing.
func (c *checkpointer) write() {
	c.mu.Lock()
	if !c.writing {
		c.writeLocked()
	}
	c.mu.Unlock()
}

// writeLocked commits what is queued in one transaction; c.mu is held on
// entry and exit, but not during the commit.
func (c *checkpointer) writeLocked() {
	p := &store.CheckpointParams{Run: c.run, RunID: c.runID, Holder: c.holder, Steps: c.steps, Logs: c.logs}
	t := c.queued
	c.run, c.steps, c.logs = nil, nil, nil
	clear(c.index)
	c.writing = true
	c.mu.Unlock()
	var err error
	tries := 0
	if p.Run != nil || len(p.Steps)+len(p.Logs) > 0 {
		tries, err = c.commit(p)
	}
	c.mu.Lock()
	c.recovered = c.recovered || (err == nil && tries > 1)
	c.writing = false
	c.written = max(c.written, t)
	c.lastErr = err
	switch {
	case errors.Is(err, routine.ErrConflict):
		if c.lost == nil {
			c.lost = err
		}
	case err != nil:
		c.restore(p)
	}
	c.done.Broadcast()
}

// restore queues again, for the next batch, what a batch that the store
// refused held, but for what was queued again since: the run goes on, and
// its records are stored once the store answers again, none lost. c.mu is
// held.
func (c *checkpointer) restore(p *store.CheckpointParams) {
	if c.run == nil {
		c.run = p.Run
	}
	steps := make([]*routine.StepRun, 0, len(p.Steps)+len(c.steps))
	for _, s := range p.Steps {
		if _, again := c.index[stepKey{s.Phase, s.ID}]; !again {
			steps = append(steps, s)
		}
	}
	c.steps = append(steps, c.steps...)
	clear(c.index)
	for i, s := range c.steps {
		c.index[stepKey{s.Phase, s.ID}] = i
	}
	c.logs = slices.Concat(p.Logs, c.logs)
}

// A batch the store fails to write is tried again, with a backoff from
// 10ms growing to at most a second, for commitPatience: a database that
// restarts or fails over comes back within it, and meanwhile the run
// waits at its next step, which starts only once the records before it
// are stored. After that, or after commitTries once the run's daemon
// stops waiting for it, the batch is given up for now and queued again
// with the next (restore): the run goes on without its records stored,
// and a step it then runs may run again should the run be resumed.
// A store whose storage refuses writes (store.ErrUnwritable: a full
// disk) is waited for without end instead: the run stays as the store
// has it, and waits at its next step until space returns or its daemon
// stops waiting for it; the daemon logs such an outage once, so the
// tries log at debug level only.
const (
	commitPatience = 30 * time.Second
	commitTries    = 4
	maxCommitDelay = time.Second
)

// commit writes one batch, trying it again while the store fails (see
// commitPatience), and returns how many tries it took. The error of a
// batch given up is logged and returned for close to report. A run the
// store no longer has, or that another worker holds, is not tried again.
// The backoff waits on the machine's time: it is the database's, not the
// run's.
func (c *checkpointer) commit(p *store.CheckpointParams) (int, error) {
	delay := 10 * time.Millisecond
	start := time.Now()
	var last error
	for try := 1; ; try++ {
		err := c.store.Checkpoint(c.ctx, p)
		unwritable := errors.Is(err, store.ErrUnwritable)
		switch {
		case err == nil:
			if try > commitTries {
				c.logger.Log(c.ctx, store.LogLevel(last, slog.LevelInfo), "checkpoint stored again", "run_id", c.runID, "trace_id", c.traceID, "after", time.Since(start).Round(time.Millisecond))
			}
			return try, nil
		case errors.Is(err, routine.ErrConflict): // the run is another worker's: no use trying again
			c.logger.Warn("checkpoint refused: the run was taken over by another worker", "run_id", c.runID, "trace_id", c.traceID, "err", err)
			return try, err
		case errors.Is(err, routine.ErrNotFound),
			try >= commitTries && (c.hurry.Err() != nil || !unwritable && time.Since(start) >= c.patience):
			c.logger.Log(c.ctx, store.LogLevel(err, slog.LevelError), "checkpoint", "run_id", c.runID, "trace_id", c.traceID, "steps", len(p.Steps), "lines", len(p.Logs), "tries", try, "err", err)
			return try, err
		case try == commitTries:
			c.logger.Log(c.ctx, store.LogLevel(err, slog.LevelWarn), "checkpoint failing: the run waits, trying again", "run_id", c.runID, "trace_id", c.traceID, "for", c.patience, "err", err)
		}
		last = err
		time.Sleep(delay)
		delay = min(4*delay, maxCommitDelay)
	}
}
