// Package repeat keeps a failure that happens again and again — an email
// trigger that cannot log in, a webhook whose secret is not set, a queue
// that refuses every tick — from flooding the log and the audit log: the
// first failure is reported at once, the same failure again only at a
// backoff, with the count of those left out, and its end once.
package repeat

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// The backoff of a repeated failure: it is reported again FirstRepeat
// after the first report, then after twice the wait before, up to
// MaxRepeat.
const (
	FirstRepeat = time.Minute
	MaxRepeat   = time.Hour
)

// Limiter decides when failures are reported. A key names what fails (a
// routine's trigger, a webhook's path); a key fails with one message at a
// time, and a new message is a new failure, reported at once. Limiter is
// safe for concurrent use.
type Limiter struct {
	now     func() time.Time
	mu      sync.Mutex
	failing map[string]*failure
}

// failure is the current failure of a key.
type failure struct {
	msg        string
	since      time.Time
	count      int           // failures of key in a row, whatever their message
	next       time.Time     // when the message is reported again
	wait       time.Duration // the backoff after next
	suppressed int           // failures not reported since the last one that was
}

// New returns a Limiter reading the time from now, a clock.Clock's Now
// (time.Now when nil; tests pass a virtual clock's).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, failing: map[string]*failure{}}
}

// Report is what the Limiter decides about one failure.
type Report struct {
	// First is the first failure of its key, or the first with this
	// message: something changed.
	First bool
	// Due says to report the failure now: it is the first, or the backoff
	// since the last report is over.
	Due bool
	// Suppressed counts the failures with this message that were not
	// reported since the last one that was (when Due).
	Suppressed int
}

// Fail records a failure of key with msg and says whether to report it.
func (l *Limiter) Fail(key, msg string) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.failing[key]
	if f == nil {
		f = &failure{since: now}
		l.failing[key] = f
	}
	f.count++
	if f.msg != msg {
		f.msg, f.next, f.wait, f.suppressed = msg, now.Add(FirstRepeat), min(2*FirstRepeat, MaxRepeat), 0
		return Report{First: true, Due: true}
	}
	if now.Before(f.next) {
		f.suppressed++
		return Report{}
	}
	rep := Report{Due: true, Suppressed: f.suppressed}
	f.next, f.wait, f.suppressed = now.Add(f.wait), min(2*f.wait, MaxRepeat), 0
	return rep
}

// OK ends the failure of key. It returns how many failures came in a row
// and when the first did; 0 when key was not failing.
func (l *Limiter) OK(key string) (failures int, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failing[key]
	if f == nil {
		return 0, time.Time{}
	}
	delete(l.failing, key)
	return f.count, f.since
}

// Log records a failure of key and logs msg with args at level when it
// is due, with repeated=N when N like it were left out since the last
// line.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) Report {
	rep := l.Fail(key, msg)
	if rep.Due {
		if rep.Suppressed > 0 {
			args = append(args, "repeated", rep.Suppressed)
		}
		log.Log(context.Background(), level, msg, args...)
	}
	return rep
}

// Recovered ends the failure of key and, when there was one, logs msg
// with args at info level, with how many failures there were and for how
// long. It reports whether key was failing.
func (l *Limiter) Recovered(log *slog.Logger, key, msg string, args ...any) bool {
	n, since := l.OK(key)
	if n == 0 {
		return false
	}
	log.Info(msg, append(args, "failures", n, "after", l.now().Sub(since).Round(time.Second))...)
	return true
}
