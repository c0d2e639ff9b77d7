package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	_ "time/tzdata" // time zones must not depend on the zoneinfo of the machine

	"github.com/robfig/cron/v3"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/cronexpr"
	"github.com/routines-dev/routines/internal/repeat"
	"github.com/routines-dev/routines/internal/routine"
)

// SchedulerConfig is what a Scheduler needs from the daemon.
type SchedulerConfig struct {
	// Sink receives every tick that fires.
	Sink Sink
	// Logger receives skipped ticks and firings the Sink refused.
	Logger *slog.Logger
	// Clock is the time source; nil means clock.Real.
	Clock clock.Clock
	// Active reports whether a run of the routine is queued or running;
	// overlap: skip does not fire while it does. Nil means never active.
	Active func(routine string) bool
	// Skipped, when set, hears of each tick that overlap: skip left out
	// (the metrics of trigger ingress): the routine and the trigger kind.
	Skipped func(routine, kind string)
	// LastFire returns when the trigger at index trigger of the routine
	// last fired (a firing the Sink accepted), or the zero time if never.
	// It decides catchup and keeps the cadence of every: across restarts.
	// Nil means never.
	LastFire func(routine string, trigger int) time.Time
}

// Scheduler fires the cron: and every: triggers of routines. One goroutine
// sleeps until the earliest tick of all of them and calls the Sink in turn,
// so a slow Sink delays later ticks rather than piling them up.
type Scheduler struct {
	cfg   SchedulerConfig
	clock clock.Clock
	log   *slog.Logger
	// refused keeps a tick the queue refuses again and again (it is full,
	// the disk is) to one warning, then one at backoff.
	refused *repeat.Limiter

	mu      sync.Mutex
	entries map[string][]*entry // by routine name
	wake    chan struct{}
	cancel  context.CancelFunc // set by Start
	done    chan struct{}      // closed when the loop has returned
}

// entry is one scheduled trigger. next is touched only by the loop.
type entry struct {
	routine string
	index   int
	kind    string        // cron or every
	sched   cron.Schedule // cron only
	loc     *time.Location
	every   time.Duration // every only
	overlap string
	catchup string
	next    time.Time // zero until the loop has seen the entry
}

// NewScheduler returns a Scheduler with no triggers; add them with Set.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	s := &Scheduler{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, entries: map[string][]*entry{}, wake: make(chan struct{}, 1)}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.refused = repeat.New(s.clock.Now)
	return s
}

// Set replaces the scheduled triggers of a routine with the cron: and
// every: entries of triggers (others are ignored; nil removes the routine).
// It may be called before or after Start, for instance when a routine file
// is reloaded. A trigger added this way catches up per its catchup: option.
func (s *Scheduler) Set(name string, triggers []routine.Trigger) error {
	var es []*entry
	for i, t := range triggers {
		e, err := newEntry(name, i, t)
		if err != nil {
			return fmt.Errorf("trigger %d: %w", i, err)
		}
		if e != nil {
			es = append(es, e)
		}
	}
	s.mu.Lock()
	if len(es) == 0 {
		delete(s.entries, name)
	} else {
		s.entries[name] = es
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// newEntry returns the entry of trigger i of a routine, or nil when it is
// neither cron: nor every:.
func newEntry(name string, i int, t routine.Trigger) (*entry, error) {
	kind := t.Kind()
	if kind != "cron" && kind != "every" {
		return nil, nil
	}
	e := &entry{routine: name, index: i, kind: kind, overlap: t.Overlap, catchup: t.Catchup, loc: time.UTC}
	if kind == "every" {
		e.every = t.Every.D()
		if e.every <= 0 {
			return nil, fmt.Errorf("every must be positive, got %s", e.every)
		}
		return e, nil
	}
	sched, err := cronexpr.Parse(t.Cron)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", t.Cron, err)
	}
	e.sched = sched
	if t.Timezone != "" && t.Timezone != "UTC" {
		if t.Timezone == "Local" {
			return nil, errors.New("time zone Local: use an IANA name")
		}
		loc, err := time.LoadLocation(t.Timezone)
		if err != nil {
			return nil, err
		}
		e.loc = loc
	}
	return e, nil
}

// NextFires returns the next n times trigger t fires after from, as the
// Scheduler fires them, for validate and status to show. last is when it
// last fired (zero if never): an every: trigger keeps its cadence, and
// a never-fired one first fires every after from, as after a daemon start.
// A cron: trigger's times are in its timezone (UTC by default), an
// every: trigger's in from's location. Fewer than n come back when the
// schedule ends (a cron: trigger fires nowhere in the next five years,
// such as on 30 February); none for a trigger that is not cron: or every:.
func NextFires(t routine.Trigger, last, from time.Time, n int) ([]time.Time, error) {
	e, err := newEntry("", 0, t)
	if e == nil || err != nil {
		return nil, err
	}
	loc := e.loc
	if e.kind == "every" {
		loc = from.Location()
	}
	var fires []time.Time
	for prev, now := last, from; len(fires) < n; {
		next := e.after(prev, now)
		if next.IsZero() {
			break
		}
		fires = append(fires, next.In(loc))
		prev, now = next, next
	}
	return fires, nil
}

// Start starts the scheduling loop; it runs until ctx ends or Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("scheduler already started")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.run(ctx)
	return nil
}

// Stop ends the loop and returns once it has: no tick fires after Stop.
// A Sink call in progress sees its context cancelled.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (s *Scheduler) run(ctx context.Context) {
	defer close(s.done)
	for {
		select { // the snapshot below sees every Set made so far
		case <-s.wake:
		default:
		}
		var earliest time.Time
		for _, e := range s.snapshot() {
			now := s.clock.Now()
			switch {
			case e.next.IsZero():
				s.begin(ctx, e, now)
			case !e.next.After(now):
				s.tick(ctx, e, e.next)
				e.next = e.after(e.next, s.clock.Now())
			}
			if earliest.IsZero() || e.next.Before(earliest) {
				earliest = e.next
			}
		}
		var timer clock.Timer
		var fired <-chan time.Time
		if !earliest.IsZero() {
			timer = s.clock.NewTimer(earliest.Sub(s.clock.Now()))
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Scheduler) snapshot() []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*entry
	for _, es := range s.entries {
		all = append(all, es...)
	}
	return all
}

// current reports whether e is still scheduled (Set may have replaced it).
func (s *Scheduler) current(e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.entries[e.routine] {
		if x == e {
			return true
		}
	}
	return false
}

// begin schedules a new entry: with catchup: one and a tick missed since
// the last firing, it fires the latest missed tick now. A trigger that has
// never fired has missed nothing.
func (s *Scheduler) begin(ctx context.Context, e *entry, now time.Time) {
	var last time.Time
	if s.cfg.LastFire != nil {
		last = s.cfg.LastFire(e.routine, e.index)
	}
	if last.IsZero() {
		e.next = e.after(time.Time{}, now)
		return
	}
	if missed, ok := e.latest(last, now); ok && e.catchup == "one" {
		s.log.InfoContext(ctx, "catching up a missed tick", "routine", e.routine, "trigger", e.index, "scheduled_at", missed)
		s.tick(ctx, e, missed)
		now = s.clock.Now()
	}
	e.next = e.after(last, now)
}

// after returns the first tick later than now. An every: trigger keeps the
// cadence of prev, its previous tick, when there is one.
func (e *entry) after(prev, now time.Time) time.Time {
	if e.kind == "every" {
		if prev.IsZero() {
			return now.Add(e.every)
		}
		return prev.Add((now.Sub(prev)/e.every + 1) * e.every)
	}
	next := e.sched.Next(now.In(e.loc))
	// When clocks go back, the repeated hour shows the same wall-clock time
	// twice; cron fires a time of day once, so the second is skipped.
	if !prev.IsZero() && sameWallClock(next.In(e.loc), prev.In(e.loc)) {
		next = e.sched.Next(next)
	}
	return next
}

// sameWallClock reports whether a and b read the same on a clock of their
// location, to the second.
func sameWallClock(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second()
}

// latest returns the latest tick in (last, now], if there is one.
func (e *entry) latest(last, now time.Time) (time.Time, bool) {
	if !now.After(last) {
		return time.Time{}, false
	}
	if e.kind == "every" {
		n := now.Sub(last) / e.every
		return last.Add(n * e.every), n > 0
	}
	// Widen a window back from now until it holds a tick, then walk the
	// ticks inside it: a per-second schedule down for a week must not walk
	// 600 000 ticks.
	for w := time.Second; ; w *= 2 {
		from := now.Add(-w)
		if !from.After(last) {
			from = last
		}
		t := e.sched.Next(from.In(e.loc))
		if !t.IsZero() && !t.After(now) {
			for {
				n := e.sched.Next(t)
				if n.IsZero() || n.After(now) {
					return t, true
				}
				t = n
			}
		}
		if from.Equal(last) {
			return time.Time{}, false
		}
	}
}

// tick fires e for the tick scheduled at at, unless overlap: skip and a
// run of the routine is active. queue and allow both fire: the queue
// serializes runs of a queue trigger.
func (s *Scheduler) tick(ctx context.Context, e *entry, at time.Time) {
	if !s.current(e) {
		return
	}
	if (e.overlap == "" || e.overlap == "skip") && s.cfg.Active != nil && s.cfg.Active(e.routine) {
		s.log.InfoContext(ctx, "tick skipped: a run is active", "routine", e.routine, "trigger", e.index, "scheduled_at", at)
		if s.cfg.Skipped != nil {
			s.cfg.Skipped(e.routine, e.kind)
		}
		return
	}
	payload, err := json.Marshal(struct {
		ScheduledAt string `json:"scheduled_at"`
		Trigger     string `json:"trigger"`
	}{at.In(e.loc).Format(time.RFC3339Nano), e.kind})
	if err != nil {
		panic(err) // two strings always marshal
	}
	f := Fire{Routine: e.routine, Trigger: e.index, Kind: e.kind, Payload: payload, At: s.clock.Now(), Scheduled: at}
	key := e.routine + "/" + strconv.Itoa(e.index)
	if err := s.cfg.Sink(ctx, f); err != nil {
		s.refused.Log(s.log, sinkLevel(err, slog.LevelWarn), key, "tick not accepted: "+err.Error(), "routine", e.routine, "trigger", e.index, "scheduled_at", at)
		return
	}
	s.refused.Recovered(s.log, key, "ticks accepted again", "routine", e.routine, "trigger", e.index)
}
