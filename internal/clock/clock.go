// Package clock owns the one source of time of the engine and the
// daemon's services: the Clock interface, Real (the machine's clock) and
// Virtual (a clock that moves only when a test, or a sleeper, moves it).
// Code that stamps times or waits takes a Clock, so that tests run
// schedules, retries' backoffs, leases and debounce windows without
// waiting, and `routines test` runs a routine's backoffs at once.
//
// Pacing that is about the machine rather than the routine (a database's
// busy backoff, how often logs are flushed) stays on package time.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first, and
	// returns ctx.Err() in the second case.
	Sleep(ctx context.Context, d time.Duration) error
	// NewTimer returns a timer that delivers the time on its channel once
	// d has passed.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine once d has passed. The
	// timer's channel is nil; Stop cancels the call.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C delivers the time once the timer fires (nil for AfterFunc).
	C() <-chan time.Time
	// Stop prevents the timer from firing, and reports whether it did:
	// false when the timer had fired (and its time was received) or was
	// stopped already. After Stop, C delivers nothing, as for time.Timer
	// since Go 1.23.
	Stop() bool
}

// Real is the machine's clock; its zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc returns time.AfterFunc(d, f).
func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Interface guards.
var (
	_ Clock = Real{}
	_ Clock = (*Virtual)(nil)
)
