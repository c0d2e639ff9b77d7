// Package trigger turns the triggers of routines into firings: the cron and
// every schedules (Scheduler), file-system events (Watcher), new mail of an
// IMAP mailbox (EmailWatcher) and the signature and event checks of webhooks
// (VerifyHMAC, EventFilter). Every trigger kind feeds a Sink; the package
// knows nothing of the store, the queue or the engine, so the daemon decides
// what a firing becomes (a queued run), where an email trigger keeps its
// place (a CursorStore) and who hears of its failures (Problems).
//
// The exported constructors and functions are the API the local daemon
// (`routines serve`) calls; nothing here starts on its own.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Fire is one firing of a trigger.
type Fire struct {
	// Routine is the name of the routine whose trigger fired.
	Routine string
	// Trigger is the index of the trigger in the routine's triggers:, so
	// the daemon can record when it last fired and read its options.
	Trigger int
	// Kind is the trigger kind: cron, every, file or email.
	Kind string
	// Payload is the event the run sees as `event`, a JSON object.
	Payload json.RawMessage
	// At is when the trigger fired, on the trigger's clock.
	At time.Time
	// Scheduled is the tick a cron or every trigger fired for, which
	// may be earlier (a catch-up); zero for the other kinds.
	Scheduled time.Time
	// DedupeKey, when set, makes the firing fold into the run that an
	// earlier firing of the routine with the same key made, up to
	// DedupeWindow after it, instead of queueing another.
	DedupeKey    string
	DedupeWindow time.Duration
}

// Sink receives firings; the daemon queues a run for each. It returns an
// error when the firing could not be accepted; the trigger logs it and
// carries on, it does not retry.
type Sink func(ctx context.Context, f Fire) error

// ErrSinkDown is wrapped by the error of a Sink that takes no firing for
// a while, for a cause the daemon logs once itself (its store refuses
// writes): a trigger logs such a refusal at debug level only, rather
// than at each firing.
var ErrSinkDown = errors.New("the daemon takes no firing now")

// sinkLevel is the level to log a firing the sink refused with err at:
// level, or debug when the sink is down.
func sinkLevel(err error, level slog.Level) slog.Level {
	if errors.Is(err, ErrSinkDown) {
		return slog.LevelDebug
	}
	return level
}
