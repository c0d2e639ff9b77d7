package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrUnwritable is wrapped by the error of a write that the store's
// storage refused: a full disk, an I/O error, a read-only file system.
// Nothing the caller sent is wrong, and nothing of the write was kept:
// the same write goes through once the storage takes writes again, so a
// server answers it 503 with Retry-After, and a run waits rather than
// fails.
var ErrUnwritable = errors.New("the store cannot write")

// UnwritableError is a write the storage refused, with why in words for
// an operator. It wraps ErrUnwritable and the driver's error.
type UnwritableError struct {
	// Cause says why, such as "disk full" or "read-only file system".
	Cause string
	// Path is where: the store's file.
	Path string
	// Err is the driver's error.
	Err error
}

func (e *UnwritableError) Error() string {
	return ErrUnwritable.Error() + ": " + e.Cause + " at " + e.Path + " (" + e.Err.Error() + ")"
}

// Unwrap makes the error an ErrUnwritable and the driver's.
func (e *UnwritableError) Unwrap() []error { return []error{ErrUnwritable, e.Err} }

// WriteProber is implemented by a store that can tell when its storage
// refuses writes (its Writability), and try a write to learn whether it
// takes them again.
type WriteProber interface {
	Writability() *Writability
	// ProbeWrite makes a write that changes nothing, and reports it to
	// the Writability: a refusal as any write's, a success as the end of
	// the outage. A write that found nothing to change may need no disk
	// space and go through on a full disk, so only this one ends an
	// outage.
	ProbeWrite(ctx context.Context) error
}

// Writability tells whether a store's storage takes writes: the driver
// reports each write the storage refuses, and the probe that went through
// after them (WriteProber); the daemon logs the outage and its end, and
// its readiness reports it. Safe for concurrent use; the zero value is
// writable.
type Writability struct {
	mu      sync.Mutex
	err     error     // the refusal that began the outage; nil: writable
	since   time.Time // of that refusal
	changed chan struct{}
}

// Refused records err, when it wraps ErrUnwritable, as a write the
// storage refused at now: the first one begins an outage. It returns err.
func (w *Writability) Refused(err error, now time.Time) error {
	if !errors.Is(err, ErrUnwritable) {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err, w.since = err, now
		w.notify()
	}
	return err
}

// Wrote records that a probe went through at now: the outage, if any,
// is over. It returns how long it lasted, and false when there was none.
func (w *Writability) Wrote(now time.Time) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		return 0, false
	}
	d := now.Sub(w.since)
	w.err = nil
	w.notify()
	return d, true
}

// Outage returns when the current outage began and the refusal that
// began it; a nil error when the storage takes writes.
func (w *Writability) Outage() (since time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.err
}

// Changed returns a channel closed at the next change: an outage begins
// or ends.
func (w *Writability) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	return w.changed
}

// notify closes the channel of Changed; w.mu is held.
func (w *Writability) notify() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// LogLevel is the level to log a failed call to the store at: level, or
// Debug when the storage refused a write. The daemon logs such an outage
// once when it begins and once when it ends (Writability), rather than
// at every write it refuses.
func LogLevel(err error, level slog.Level) slog.Level {
	if errors.Is(err, ErrUnwritable) {
		return slog.LevelDebug
	}
	return level
}
