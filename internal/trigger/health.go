package trigger

import (
	"log/slog"

	"github.com/routines-dev/routines/internal/repeat"
)

// Problems hears of the triggers that fail and of their recovery, so the
// daemon can show its operator what is wrong (GET /v1/status, routines
// status); *server.Problems is one.
type Problems interface {
	// Report records a failure of a routine's trigger; trigger names it
	// for a person ("email imap.example.com/support").
	Report(routine, trigger, message string)
	// Clear ends the failure of a routine's trigger: it works.
	Clear(routine, trigger string)
}

// health tells of the failures of a trigger that retries on its own (an
// email watcher): each to Problems, but to the log only once, then at
// backoff (repeat.Limiter), since a retry every few seconds would flood
// it; and the recovery once.
type health struct {
	log      *slog.Logger
	repeats  *repeat.Limiter
	problems Problems // nil: none
	routine  string
	trigger  string
}

func newHealth(cfg EmailConfig, log *slog.Logger, trigger string) *health {
	return &health{log: log, repeats: repeat.New(cfg.Clock.Now), problems: cfg.Problems, routine: cfg.Routine, trigger: trigger}
}

// failed tells of a failure whose cause is err: msg is logged at level
// with args when due.
func (h *health) failed(err error, level slog.Level, msg string, args ...any) {
	h.repeats.Log(h.log, level, "", msg, args...)
	if h.problems != nil {
		h.problems.Report(h.routine, h.trigger, err.Error())
	}
}

// ok tells that the trigger works: a failure before it is over.
func (h *health) ok() {
	h.repeats.Recovered(h.log, "", h.trigger+" works again")
	if h.problems != nil {
		h.problems.Clear(h.routine, h.trigger)
	}
}
