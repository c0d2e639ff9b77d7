package clock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
)

var start = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// waitCtx bounds how long a test waits for a signal that should come.
func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fired reports whether a timer delivered a time, and which.
func fired(tm clock.Timer) (time.Time, bool) {
	select {
	case at := <-tm.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

// Moving the clock fires the timers it passes, with the clock's new time,
// and only those; moving it back fires none.
func TestVirtualAdvanceFiresDueTimers(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	late := v.NewTimer(3 * time.Second)
	early := v.NewTimer(time.Second)
	tie := v.NewTimer(time.Second)
	v.Advance(1500 * time.Millisecond)
	for name, tm := range map[string]clock.Timer{"early": early, "tie": tie} {
		if at, ok := fired(tm); !ok || !at.Equal(start.Add(1500*time.Millisecond)) {
			t.Errorf("%s timer: fired %v at %s, want at the clock's new time", name, ok, at)
		}
	}
	if _, ok := fired(late); ok {
		t.Fatal("the 3s timer fired after 1.5s")
	}
	v.Set(start.Add(-time.Hour))
	if _, ok := fired(late); ok || !v.Now().Equal(start.Add(-time.Hour)) {
		t.Fatalf("set back: fired %v, now %s", ok, v.Now())
	}
	v.Set(start.Add(3 * time.Second))
	if _, ok := fired(late); !ok {
		t.Fatal("the 3s timer did not fire at 3s")
	}
	if _, ok := fired(v.NewTimer(0)); !ok {
		t.Fatal("a timer of 0 did not fire at once")
	}
}

// Stop keeps a timer from firing, takes back a time not yet received,
// and reports false once there is nothing left to stop.
func TestVirtualStop(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	stopped := v.NewTimer(time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	unread := v.NewTimer(time.Second)
	v.Advance(time.Second)
	if _, ok := fired(stopped); ok {
		t.Fatal("a stopped timer fired")
	}
	if !unread.Stop() {
		t.Fatal("Stop of a timer whose time was not received returned false")
	}
	if _, ok := fired(unread); ok {
		t.Fatal("a time was received after Stop")
	}
	if unread.Stop() || stopped.Stop() {
		t.Fatal("a second Stop returned true")
	}
}

// AfterFunc calls its function once the clock passes it, unless stopped.
func TestVirtualAfterFunc(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	called, cancelled := make(chan struct{}), make(chan struct{})
	tm := v.AfterFunc(time.Minute, func() { close(called) })
	gone := v.AfterFunc(time.Second, func() { close(cancelled) })
	if tm.C() != nil {
		t.Error("AfterFunc's timer has a channel")
	}
	if !gone.Stop() {
		t.Fatal("Stop of a pending AfterFunc returned false")
	}
	v.Advance(time.Minute)
	select {
	case <-called:
	case <-waitCtx(t).Done():
		t.Fatal("AfterFunc not called once its time passed")
	}
	if tm.Stop() {
		t.Error("Stop of an AfterFunc that ran returned true")
	}
	select {
	case <-cancelled:
		t.Error("a stopped AfterFunc ran")
	default:
	}
}

// Sleepers wait until the clock passes their end, each reported by
// WaitArmed with its deadline, however many sleep at once.
func TestVirtualSleepWaitsForTheClock(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	ctx := waitCtx(t)
	const n = 50
	var wg sync.WaitGroup
	woke := make(chan time.Duration, n)
	for i := range n {
		wg.Go(func() {
			d := time.Duration(i+1) * time.Second
			if err := v.Sleep(ctx, d); err != nil {
				t.Error(err)
			}
			woke <- d
		})
	}
	deadlines := map[time.Time]bool{}
	for range n {
		at, err := v.WaitArmed(ctx)
		if err != nil {
			t.Fatalf("%d sleepers armed: %v", len(deadlines), err)
		}
		deadlines[at] = true
	}
	if len(deadlines) != n || !deadlines[start.Add(time.Second)] || !deadlines[start.Add(n*time.Second)] {
		t.Fatalf("deadlines armed: %v", deadlines)
	}
	v.Advance(n/2*time.Second + time.Millisecond)
	for range n / 2 {
		if d := <-woke; d > n/2*time.Second {
			t.Fatalf("a %s sleep ended after %s", d, n/2*time.Second)
		}
	}
	v.Advance(time.Hour)
	wg.Wait()
}

// A Sleep ends early with the context's error, and its timer goes.
func TestVirtualSleepCancelled(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(start)
	ctx, cancel := context.WithCancel(waitCtx(t))
	errc := make(chan error, 1)
	go func() { errc <- v.Sleep(ctx, time.Hour) }()
	if _, err := v.WaitArmed(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep after cancel: %v", err)
	}
	if err := v.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a done context: %v", err)
	}
}

// On an auto-advancing clock Sleep moves the time on at once, firing the
// timers it passes; a cancelled Sleep does not move it.
func TestAutoAdvance(t *testing.T) {
	t.Parallel()
	v := clock.NewAutoAdvance(start)
	tm := v.NewTimer(30 * time.Minute)
	if err := v.Sleep(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if !v.Now().Equal(start.Add(time.Hour)) {
		t.Fatalf("now %s after sleeping an hour from %s", v.Now(), start)
	}
	if _, ok := fired(tm); !ok {
		t.Fatal("a timer passed by a Sleep did not fire")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := v.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || !v.Now().Equal(start.Add(time.Hour)) {
		t.Fatalf("cancelled Sleep: %v, now %s", err, v.Now())
	}
}

func TestRealSleep(t *testing.T) {
	t.Parallel()
	var c clock.Real
	if err := c.Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(time.Millisecond, cancel)
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep cancelled: %v", err)
	}
	called := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(called) })
	<-called
	if tm := c.NewTimer(time.Hour); !tm.Stop() {
		t.Fatal("Stop of a pending real timer returned false")
	}
}
