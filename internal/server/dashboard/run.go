package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// runLogLines is how many lines of its log the page of a run shows at
// first; the rest is for `routines logs`.
const runLogLines = 5000

// stepRow is a step of a run as its page shows it.
type stepRow struct {
	*routine.StepRun
	// SubRun is the run a routine step started, to link to.
	SubRun  string
	Outputs string // indented JSON; "" for none
}

type runData struct {
	Run        *routine.Run
	Steps      []stepRow
	Trigger    string // the payload, indented
	Input      string
	Error      string // the error payload, indented
	Wait, Took time.Duration
	Timeline   template.HTML
	Logs       []routine.LogLine
	// More says the log has more lines than shown.
	More bool
	// Follow is where the page's script reads the lines to come from,
	// while the run is not over.
	Follow    string
	LastSeq   int64
	Artifacts []artifactLink
	// ArtifactsProblem says why the artifacts cannot be listed.
	ArtifactsProblem string
	CanCancel        bool
	CanRerun         bool
	CanReplay        bool
}

// run renders the page of a run.
func (d *Dashboard) run(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	run, err := store.RunGetIn(ctx, d.cfg.Store, r.PathValue("id"), d.runScope(ctx))
	var ambiguous *routine.AmbiguousIDError
	switch {
	case errors.As(err, &ambiguous):
		d.fail(w, r, http.StatusBadRequest, ambiguous.Error()+": give more of the id.")
		return
	case errors.Is(err, routine.ErrNotFound) || err == nil && !d.sees(ctx, run.Routine):
		d.fail(w, r, http.StatusNotFound, "There is no run "+r.PathValue("id")+".")
		return
	case err != nil:
		d.fail(w, r, http.StatusInternalServerError, storeError("run", err))
		return
	}
	steps, err := d.cfg.Store.StepList(ctx, run.ID)
	if err == nil {
		var logs []routine.LogLine
		logs, err = d.cfg.Store.LogList(ctx, &store.LogListParams{RunID: run.ID, Limit: runLogLines + 1})
		if err == nil {
			d.renderRun(w, r, run, steps, logs)
			return
		}
	}
	d.fail(w, r, http.StatusInternalServerError, storeError("run", err))
}

func (d *Dashboard) renderRun(w http.ResponseWriter, r *http.Request, run *routine.Run, steps []*routine.StepRun, logs []routine.LogLine) {
	now := time.Now()
	data := runData{Run: run, Trigger: indent(run.Trigger.Payload), Error: marshalIndent(run.Error),
		CanCancel: !run.State.Final(), CanRerun: run.State.Final(), CanReplay: run.State == routine.StateDead}
	if len(run.Input) > 0 {
		data.Input = marshalIndent(run.Input)
	}
	if len(logs) > runLogLines {
		logs, data.More = logs[:runLogLines], true
	}
	data.Logs = logs
	if len(logs) > 0 {
		data.LastSeq = logs[len(logs)-1].Seq
	}
	if !run.State.Final() {
		data.Follow = "/ui/runs/" + run.ID + "/logs"
	}
	if run.StartedAt != nil {
		data.Wait = run.StartedAt.Sub(run.QueuedAt)
		end := now
		if run.FinishedAt != nil {
			end = *run.FinishedAt
		}
		data.Took = end.Sub(*run.StartedAt)
	}
	for _, s := range steps {
		row := stepRow{StepRun: s}
		if id, ok := s.Outputs["run_id"].(string); ok && s.Kind == "routine" {
			row.SubRun = id
		}
		if len(s.Outputs) > 0 {
			row.Outputs = marshalIndent(s.Outputs)
		}
		data.Steps = append(data.Steps, row)
	}
	data.Timeline = runTimeline(run, steps, logs, now)
	data.Artifacts, data.ArtifactsProblem = d.listArtifacts(r.Context(), run.ID)
	d.render(w, r, http.StatusOK, "run", page{Title: "Run " + run.ID, Nav: "runs", Data: data})
}

// failedAttempt is the engine's line when an attempt of a step fails and
// another follows (engine/run.go).
var failedAttempt = regexp.MustCompile(`^attempt (\d+)/\d+ failed`)

// runTimeline draws a bar per attempt of each step that started: the
// engine's "attempt n/m failed" lines end the attempts before the last,
// which ends with the step. Compensation and on_failure steps are rows
// of their own, named by their phase.
func runTimeline(run *routine.Run, steps []*routine.StepRun, logs []routine.LogLine, now time.Time) template.HTML {
	failures := map[string][]time.Time{} // by step id
	for _, l := range logs {
		if l.Stream == routine.StreamSystem && failedAttempt.MatchString(l.Text) {
			failures[l.Step] = append(failures[l.Step], l.Time)
		}
	}
	var from, to time.Time
	if run.StartedAt != nil {
		from = *run.StartedAt
	}
	var rows []timelineRow
	for _, s := range steps {
		label := s.ID
		if s.Phase != routine.PhaseMain {
			label = string(s.Phase) + ": " + s.ID
		}
		row := timelineRow{Label: label}
		if s.StartedAt != nil {
			end := now
			if s.FinishedAt != nil {
				end = *s.FinishedAt
			}
			start := *s.StartedAt
			// Failures logged before this start are of an attempt whose
			// step record started again (a retry from the queue).
			attempt := 1
			for _, f := range failures[s.ID] {
				if f.Before(start) {
					attempt++
					continue
				}
				row.Bars = append(row.Bars, bar{Start: start, End: f, Class: "st-failed",
					Title: fmt.Sprintf("%s attempt %d failed after %s", s.ID, attempt, shortDuration(f.Sub(start)))})
				start, attempt = f, attempt+1
			}
			row.Bars = append(row.Bars, bar{Start: start, End: end, Class: "st-" + string(s.State),
				Title: fmt.Sprintf("%s attempt %d %s, %s", s.ID, attempt, s.State, shortDuration(end.Sub(start)))})
			if from.IsZero() || s.StartedAt.Before(from) {
				from = *s.StartedAt
			}
			to = maxTime(to, end)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 || from.IsZero() {
		return ""
	}
	if run.FinishedAt != nil {
		to = maxTime(to, *run.FinishedAt)
	}
	return timeline("steps of run "+run.ID, from, to, rows)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// indent indents a JSON document for reading; "" for none.
func indent(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// marshalIndent writes v as indented JSON; "" for nil. Its < and & are
// left as they are: the template escapes them, and \u003c reads badly.
func marshalIndent(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	if s := strings.TrimSpace(b.String()); s != "null" {
		return s
	}
	return ""
}
