package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Virtual is a clock for tests: its time moves only when Advance or Set
// moves it, and then the timers it passes fire, earliest first (ties in
// the order they were armed). A move is one step: moving the clock by an
// hour fires a one-second poll loop's timer once, not 3,600 times, since
// the loop arms its next timer only once it has woken.
//
// On a clock made by NewAutoAdvance, Sleep moves the time on by d at once
// instead of waiting: a routine's retries' backoffs take no time.
//
// WaitArmed tells a test that the code under test armed a timer (went to
// sleep) and until when, so the test moves the clock then, rather than
// sleeping and hoping. Virtual is safe for concurrent use.
type Virtual struct {
	mu      sync.Mutex
	now     time.Time
	auto    bool            // Sleep advances instead of waiting
	pending []*virtualTimer // by deadline, then by arming order
	armed   []time.Time     // deadlines of the timers armed, for WaitArmed
	changed chan struct{}   // closed when a timer is armed; nil when nobody waits
}

// NewVirtual returns a virtual clock at start on which Sleep waits, as
// timers do, until the clock is moved past its end.
func NewVirtual(start time.Time) *Virtual {
	return &Virtual{now: start}
}

// NewAutoAdvance returns a virtual clock at start on which Sleep(d) moves
// the time on by d at once (firing the timers it passes) and returns:
// the clock of `routines test`. Timers still wait for the clock to move.
func NewAutoAdvance(start time.Time) *Virtual {
	return &Virtual{now: start, auto: true}
}

// Now returns the clock's time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// Advance moves the clock on by d and fires the timers due by then.
func (v *Virtual) Advance(d time.Duration) {
	v.mu.Lock()
	v.setLocked(v.now.Add(d))
	v.mu.Unlock()
}

// Set moves the clock to t, forward or back, and fires the timers due by
// then.
func (v *Virtual) Set(t time.Time) {
	v.mu.Lock()
	v.setLocked(t)
	v.mu.Unlock()
}

func (v *Virtual) setLocked(t time.Time) {
	v.now = t
	n := 0
	for n < len(v.pending) && !v.pending[n].at.After(t) {
		n++
	}
	due := slices.Clone(v.pending[:n])
	v.pending = slices.Delete(v.pending, 0, n)
	for _, x := range due {
		x.fire(t)
	}
}

// Sleep waits until the clock has moved d on, or until ctx is done. On
// a clock made by NewAutoAdvance it moves the clock on by d itself.
func (v *Virtual) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	if v.auto {
		v.Advance(d)
		return nil
	}
	t := v.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewTimer returns a timer that fires once the clock has moved d on; at
// once when d <= 0.
func (v *Virtual) NewTimer(d time.Duration) Timer {
	return v.arm(d, &virtualTimer{ch: make(chan time.Time, 1)})
}

// AfterFunc calls f in its own goroutine once the clock has moved d on.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	return v.arm(d, &virtualTimer{f: f})
}

func (v *Virtual) arm(d time.Duration, t *virtualTimer) *virtualTimer {
	v.mu.Lock()
	defer v.mu.Unlock()
	t.v, t.at = v, v.now.Add(d)
	v.armed = append(v.armed, t.at)
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
	if d <= 0 {
		t.fire(v.now)
		return t
	}
	i, _ := slices.BinarySearchFunc(v.pending, t.at, func(x *virtualTimer, at time.Time) int {
		if x.at.After(at) {
			return 1
		}
		return -1 // equal deadlines: after those armed before
	})
	v.pending = slices.Insert(v.pending, i, t)
	return t
}

// WaitArmed waits until a timer is armed on the clock (NewTimer,
// AfterFunc, or a Sleep that waits) and returns its deadline. Each timer
// is reported once, in the order they were armed, including those armed
// before the call and not reported yet; a test that calls WaitArmed
// knows the code under test has gone to sleep, and until when.
func (v *Virtual) WaitArmed(ctx context.Context) (time.Time, error) {
	for {
		v.mu.Lock()
		if len(v.armed) > 0 {
			at := v.armed[0]
			v.armed = slices.Delete(v.armed, 0, 1)
			v.mu.Unlock()
			return at, nil
		}
		if v.changed == nil {
			v.changed = make(chan struct{})
		}
		changed := v.changed
		v.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// virtualTimer is a timer of a Virtual clock: a channel's (ch) or a
// function's (f).
type virtualTimer struct {
	v  *Virtual
	at time.Time
	ch chan time.Time
	f  func()
}

// fire delivers now to the timer's channel (which has room: a timer fires
// once) or starts its function. v.mu is held.
func (t *virtualTimer) fire(now time.Time) {
	if t.f != nil {
		go t.f()
		return
	}
	t.ch <- now
}

func (t *virtualTimer) C() <-chan time.Time { return t.ch }

func (t *virtualTimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	if i := slices.Index(t.v.pending, t); i >= 0 {
		t.v.pending = slices.Delete(t.v.pending, i, i+1)
		return true
	}
	select { // fired but not received: take its time back
	case <-t.ch:
		return true
	default:
		return false
	}
}
