package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/template"
)

// TriggerEvent is the trigger kind of runs fired by an emitted event.
const TriggerEvent = "event"

// DefaultDedupeWindow is how long a dedupe key folds duplicates into the
// first run when a trigger (or the emitter) sets dedupe and no window.
const DefaultDedupeWindow = 10 * time.Minute

// event receives POST /v1/events/<name>: the body (JSON, {} when empty) is
// the event, and every routine with an event trigger of that name gets a
// run, or, when the trigger's dedupe key (or the dedupe query parameter or
// Dedupe header, which override it) is still inside its window, the run
// it folded into. An event no routine listens to answers 202 with no
// runs: events are fire-and-forget.
func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	payload := json.RawMessage(`{}`)
	if strings.TrimSpace(string(body)) != "" {
		if !json.Valid(body) {
			writeError(w, http.StatusBadRequest, "the event data must be JSON")
			return
		}
		payload = json.RawMessage(body)
	}
	override := r.URL.Query().Get("dedupe")
	if override == "" {
		override = r.Header.Get("Dedupe")
	}
	var window time.Duration
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "window="+v+": want a positive duration such as 10m")
			return
		}
		window = d
	}
	var data any
	_ = json.Unmarshal(payload, &data)
	type target struct {
		rt   *routine.Routine
		trig *routine.EventTrigger
		key  string
	}
	var targets []target
	for _, rt := range s.cfg.Routines.All() {
		for i := range rt.Triggers {
			et := rt.Triggers[i].Event
			if et == nil || et.Name != name {
				continue
			}
			key := override
			if key == "" && et.Dedupe != "" {
				// An event the expression cannot key (a field it names
				// is missing) still runs the routine, undeduplicated:
				// events are fire-and-forget, so none is dropped.
				if key, err = renderDedupe(et.Dedupe, data); err != nil {
					s.log.Warn("event dedupe key", "routine", rt.Name, "event", name, "err", err)
					key = ""
				}
			}
			targets = append(targets, target{rt, et, key})
			break // one run per routine, whatever its triggers
		}
	}
	res := api.EventResult{Event: name, Runs: []api.EventRun{}, RunIDs: []string{}}
	if len(targets) > 0 && s.full(w, r, len(targets)) {
		return
	}
	for _, tg := range targets {
		req := &scheduler.Request{Routine: tg.rt, Trigger: routine.TriggerInfo{Kind: TriggerEvent, Payload: payload}}
		if tg.key != "" {
			req.DedupeKey, req.DedupeWindow = tg.key, window
			if req.DedupeWindow == 0 {
				req.DedupeWindow = tg.trig.Window.D()
			}
			if req.DedupeWindow <= 0 {
				req.DedupeWindow = DefaultDedupeWindow
			}
		}
		run, dup, err := s.cfg.Queue.Enqueue(r.Context(), req)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		res.Runs = append(res.Runs, api.EventRun{Routine: tg.rt.Name, RunID: run.ID, Deduplicated: dup})
		res.RunIDs = append(res.RunIDs, run.ID)
	}
	writeJSON(w, http.StatusAccepted, res)
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
