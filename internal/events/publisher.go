// Package events owns the fan-out of an event: every routine with an
// event trigger of its name gets a run through the queue, or, when its
// dedupe key is still inside its window, the run it folds into. The API
// (POST /v1/events/<name>) and the emit steps of the daemon's own runs
// publish through one Publisher; run-once's emit steps reach the
// project's daemon over its API (ProjectDaemon).
package events

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/template"
)

// TriggerKind is the trigger kind of runs fired by an event.
const TriggerKind = "event"

// DefaultDedupeWindow is how long a dedupe key folds duplicates into the
// first run when a trigger (or the emitter) sets dedupe and no window.
const DefaultDedupeWindow = 10 * time.Minute

// MaxPayload bounds an event's data, as the API bounds a request body:
// an emit step's data, rendered from outputs, could be larger.
const MaxPayload = 1 << 20

// Routines finds the routines that may listen to an event;
// *scheduler.Catalog is one.
type Routines interface {
	All() []*routine.Routine
}

// Event is one event to publish.
type Event struct {
	Name string
	// Payload is the event's data, JSON; empty is {}.
	Payload json.RawMessage
	// DedupeKey, when set, overrides every listener's dedupe expression;
	// DedupeWindow, when positive, their windows.
	DedupeKey    string
	DedupeWindow time.Duration
	// Namespace, when set, keeps the event to the routines of that
	// namespace (an event sent through the API by a token of it); ""
	// reaches every routine.
	Namespace string
}

// reaches reports whether an event to namespace ns ("" for any) may
// start rt.
func reaches(ns string, rt *routine.Routine) bool {
	return ns == "" || ns == rt.Namespace || (ns == store.DefaultNamespace && rt.Namespace == "")
}

// Check returns what makes the event unfit to publish: a name that is
// not one, data that is not JSON or is too large.
func (e *Event) Check() error {
	if err := routine.CheckEventName(e.Name); err != nil {
		return err
	}
	if len(e.Payload) > MaxPayload {
		return fmt.Errorf("the event data is %d bytes, more than the %d KiB an event may carry: send less", len(e.Payload), MaxPayload>>10)
	}
	if !json.Valid(e.payload()) {
		return errors.New(`the event data must be JSON, such as {"host":"web1"} (or nothing, for {})`)
	}
	return nil
}

// payload is the event's data, {} when empty.
func (e *Event) payload() json.RawMessage {
	if len(bytes.TrimSpace(e.Payload)) == 0 {
		return json.RawMessage(`{}`)
	}
	return e.Payload
}

// Publisher fans events out to the routines that listen to them. It holds
// no state of its own: it is safe for concurrent use, and any number may
// share a queue.
type Publisher struct {
	routines Routines
	queue    *scheduler.Queue
	log      *slog.Logger
}

// New returns the publisher of events to routines through queue. logger
// (discarded when nil) hears of dedupe keys an event could not render.
func New(routines Routines, queue *scheduler.Queue, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{routines: routines, queue: queue, log: logger}
}

// Listeners returns the routines that listen to an event of this name
// now: an event makes (or folds into) a run of each. The API checks its
// backlog, and the namespaces' ceilings, with them before it publishes.
// ns keeps them to a namespace, as Event.Namespace.
func (p *Publisher) Listeners(name, ns string) []*routine.Routine {
	var out []*routine.Routine
	for _, rt := range p.routines.All() {
		if reaches(ns, rt) && listener(rt, name) != nil {
			out = append(out, rt)
		}
	}
	return out
}

// Publish gives every routine that listens to ev a run, or, when the
// dedupe key of its trigger (or ev's, which overrides it) is still inside
// its window, the run it folded into. An event no routine listens to is
// no error: its result has no runs, for events are fire-and-forget. A
// listener whose run the queue refuses (scheduler.ErrRefused: a spent
// budget) is left out; only when every listener was refused is that the
// error.
func (p *Publisher) Publish(ctx context.Context, ev *Event) (*api.EventResult, error) {
	if err := ev.Check(); err != nil {
		return nil, err
	}
	payload := ev.payload()
	var data any
	_ = json.Unmarshal(payload, &data)
	res := &api.EventResult{Event: ev.Name, Runs: []api.EventRun{}, RunIDs: []string{}}
	var refused error
	for _, rt := range p.routines.All() {
		trig := listener(rt, ev.Name)
		if trig == nil || !reaches(ev.Namespace, rt) {
			continue
		}
		req := &scheduler.Request{Routine: rt, Trigger: routine.TriggerInfo{Kind: TriggerKind, Payload: payload}}
		if req.DedupeKey = p.dedupeKey(rt, trig, ev, data); req.DedupeKey != "" {
			req.DedupeWindow = dedupeWindow(trig, ev)
		}
		run, dup, err := p.queue.Enqueue(ctx, req)
		if errors.Is(err, scheduler.ErrRefused) {
			// The queue logged it (a spent budget); the other listeners
			// still get their runs.
			if refused == nil {
				refused = fmt.Errorf("event %s: %w", ev.Name, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.Name, err)
		}
		res.Runs = append(res.Runs, api.EventRun{Routine: rt.Name, RunID: run.ID, Deduplicated: dup})
		res.RunIDs = append(res.RunIDs, run.ID)
	}
	if len(res.Runs) == 0 && refused != nil {
		return nil, refused // every listener refused: the caller is told why
	}
	return res, nil
}

// Emit publishes the event of an emit step run by the daemon, in process;
// the token is for daemons reached over HTTP and not needed here.
func (p *Publisher) Emit(ctx context.Context, e *stepkind.Emission) (*api.EventResult, error) {
	ev, err := emitted(e)
	if err != nil {
		return nil, err
	}
	return p.Publish(ctx, ev)
}

// emitted is the event of an emission, checked: it reaches the routines
// of the emitter's namespace.
func emitted(e *stepkind.Emission) (*Event, error) {
	ev := &Event{Name: e.Event, DedupeKey: e.Dedupe, Namespace: cmp.Or(e.Namespace, store.DefaultNamespace)}
	if len(e.Data) > 0 {
		var err error
		if ev.Payload, err = json.Marshal(e.Data); err != nil {
			return nil, err
		}
	}
	return ev, ev.Check()
}

// listener returns the first event trigger of rt for name, or nil: a
// routine gets one run per event, whatever its triggers.
func listener(rt *routine.Routine, name string) *routine.EventTrigger {
	for i := range rt.Triggers {
		if et := rt.Triggers[i].Event; et != nil && et.Name == name {
			return et
		}
	}
	return nil
}

// dedupeKey is the key of ev's run of rt: ev's own, else the trigger's
// expression rendered over the event's data. An event the expression
// cannot key (a field it names is missing) still runs the routine,
// undeduplicated: events are fire-and-forget, so none is dropped.
func (p *Publisher) dedupeKey(rt *routine.Routine, trig *routine.EventTrigger, ev *Event, data any) string {
	if ev.DedupeKey != "" || trig.Dedupe == "" {
		return ev.DedupeKey
	}
	key, err := renderDedupe(trig.Dedupe, data)
	if err != nil {
		p.log.Warn("event dedupe key", "routine", rt.Name, "event", ev.Name, "err", err)
		return ""
	}
	return key
}

// renderDedupe renders a trigger's dedupe expression over the event.
func renderDedupe(src string, event any) (string, error) {
	if !strings.Contains(src, "{{") {
		return src, nil
	}
	t, err := template.Parse(src)
	if err != nil {
		return "", err
	}
	return t.Render(&template.Context{Event: event})
}

// dedupeWindow is how long ev's key folds duplicates: ev's window, else
// the trigger's, else DefaultDedupeWindow.
func dedupeWindow(trig *routine.EventTrigger, ev *Event) time.Duration {
	if ev.DedupeWindow > 0 {
		return ev.DedupeWindow
	}
	if w := trig.Window.D(); w > 0 {
		return w
	}
	return DefaultDedupeWindow
}

var _ stepkind.Publisher = (*Publisher)(nil)
