package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/trigger"
)

// routeRemote adds the endpoints the CLI's commands use against a daemon
// or server (docs/remote.md): listing runs and routines, cancelling and
// re-running a run, the dead-letter queue, the builtin vault, stats, the
// value report and the records of alerts.
func (s *Server) routeRemote() {
	for _, e := range []struct {
		pattern, role, action string
		h                     http.HandlerFunc
	}{
		{"GET /v1/status", store.RoleViewer, "", s.status},
		{"GET /v1/routines", store.RoleViewer, "", s.listRoutines},
		{"POST /v1/routines", store.RoleDeployer, "push", s.push},
		{"GET /v1/routines/{name}/revisions", store.RoleViewer, "", s.revisions},
		{"GET /v1/routines/{name}/revisions/{rev}/bundle", store.RoleViewer, "", s.bundle},
		{"POST /v1/routines/{name}/rollback", store.RoleDeployer, "rollback", s.rollback},
		{"POST /v1/routines/{name}/runs", store.RoleInvoker, "invoke", s.createRun},
		{"POST /v1/events/{name}", store.RoleInvoker, "event", s.event},
		{"GET /v1/runs", store.RoleViewer, "", s.listRuns},
		{"GET /v1/runs/{id}", store.RoleViewer, "", s.getRun},
		{"GET /v1/runs/{id}/logs", store.RoleViewer, "", s.runLogs},
		{"POST /v1/runs/{id}/cancel", store.RoleInvoker, "cancel", s.cancelRun},
		{"POST /v1/runs/{id}/rerun", store.RoleInvoker, "rerun", s.rerun},
		{"GET /v1/dlq", store.RoleViewer, "", s.listDead},
		{"POST /v1/dlq/{id}/replay", store.RoleInvoker, "replay", s.replay},
		{"GET /v1/stats", store.RoleViewer, "", s.getStats},
		{"GET /v1/report", store.RoleViewer, "", s.getReport},
		{"GET /v1/costs", store.RoleViewer, "", s.costs},
		{"GET /v1/alerts", store.RoleViewer, "", s.listAlerts},
		// Secret names are a deployer's: a viewer or an invoker does not
		// read them. Each namespace has its own (docs/teams.md).
		{"GET /v1/secrets", store.RoleDeployer, "secret.list", s.listSecrets},
		{"PUT /v1/secrets/{name}", store.RoleDeployer, "secret.set", s.setSecret},
		{"DELETE /v1/secrets/{name}", store.RoleDeployer, "secret.delete", s.deleteSecret},
		{"GET /v1/tokens", store.RoleAdmin, "", s.listTokens},
		{"POST /v1/tokens", store.RoleAdmin, "token.create", s.createToken},
		{"DELETE /v1/tokens/{ref}", store.RoleAdmin, "token.revoke", s.revokeToken},
		{"GET /v1/namespaces", store.RoleViewer, "", s.listNamespaces},
		{"PUT /v1/namespaces/{name}", store.RoleAdmin, "namespace.set", operators(http.HandlerFunc(s.setNamespace)).ServeHTTP},
		{"GET /v1/audit", store.RoleAdmin, "", s.listAudit},
	} {
		s.mux.Handle(e.pattern, s.allow(e.role, e.action, e.h))
	}
}

// parseRunQuery reads the filters of GET /v1/runs; an error says which
// parameter is wrong and what to write. now is what since= and until=
// given as durations count back from.
func parseRunQuery(q url.Values, now time.Time) (*store.RunListParams, error) {
	p := &store.RunListParams{Routine: q.Get("routine"), Trigger: q.Get("trigger"), Tag: q.Get("tag"), Limit: api.DefaultRunLimit}
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			if !routine.IsRunState(routine.State(st)) {
				return nil, fmt.Errorf("state=%s: want one of %s", st, routine.RunStateNames())
			}
			p.States = append(p.States, routine.State(st))
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxRunLimit {
			return nil, fmt.Errorf("limit=%s: want a number from 1 to %d", v, api.MaxRunLimit)
		}
		p.Limit = n
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &p.Since}, {"until", &p.Until}} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
			*t.dst = tm
			continue
		}
		var d routine.Duration
		if err := d.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("%s=%s: want a time such as 2026-12-04T09:00:00Z, or a duration ago such as 90m, 24h or 7d", t.name, v)
		}
		*t.dst = now.Add(-d.D())
	}
	for _, id := range []struct {
		name string
		dst  *string
		want string
	}{
		{"id", &p.IDPrefix, "the start of a run id"},
		{"before", &p.Before, "the id of the last run of the page before"},
	} {
		v := strings.ToUpper(q.Get(id.name))
		if len(v) > len(ulidExample) || strings.Trim(v, ulidAlphabet) != "" {
			return nil, fmt.Errorf("%s=%s: want %s, such as %s", id.name, q.Get(id.name), id.want, ulidExample)
		}
		*id.dst = v
	}
	return p, nil
}

// Run ids are ULIDs: 26 characters of Crockford's base32.
const (
	ulidAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	ulidExample  = "01JEB2Y5T0Z6Q9K3M8N4R7V2WX"
)

// listRuns answers GET /v1/runs: the runs the query selects, newest
// first, each without its steps (the shape of `routines runs -o json`).
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	p, err := parseRunQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.writeRuns(w, r, p)
}

// listDead answers GET /v1/dlq: the dead runs (routine= and limit= as
// GET /v1/runs), whose input is kept for replay.
func (s *Server) listDead(w http.ResponseWriter, r *http.Request) {
	p, err := parseRunQuery(r.URL.Query(), time.Now())
	if err == nil && len(p.States) > 0 {
		err = errors.New("the dead-letter queue holds dead runs only: leave state= out, or use GET /v1/runs?state=…")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p.States = []routine.State{routine.StateDead}
	s.writeRuns(w, r, p)
}

func (s *Server) writeRuns(w http.ResponseWriter, r *http.Request, p *store.RunListParams) {
	p.Routines = s.scope(r)
	runs, err := s.cfg.Store.RunList(r.Context(), p)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	out := make([]*routine.Run, len(runs))
	for i, run := range runs {
		out[i] = api.NewRun(run)
	}
	writeJSON(w, http.StatusOK, out)
}

// cancelRun answers POST /v1/runs/<id>/cancel. A queued run ends
// cancelled at once: 200 with it. A running run is asked to stop
// (store.RunCancelRequest): the worker that holds it, on any machine,
// kills its steps and ends it cancelled; 202 with the run as it is then,
// or with ?wait=D, as POST /v1/routines/<name>/runs?wait=D, 200 once it
// ended (cancelled, or otherwise if it ended first). Cancelling a
// cancelled run answers it (200); a run that ended otherwise is 409.
func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	wait, ok := s.parseWait(w, r)
	if !ok {
		return
	}
	run, ok := s.findRun(w, r)
	if !ok {
		return
	}
	if run.State.Final() && run.State != routine.StateCancelled {
		writeError(w, http.StatusConflict, fmt.Sprintf("run %s already ended %s: only a queued or running run can be cancelled", run.ID, run.State))
		return
	}
	was, msg := run.State, scheduler.ErrCancelRequested.Error()
	if run.Attempt == 0 {
		msg += " before it started"
	}
	run, err := s.cfg.Store.RunCancelRequest(r.Context(), &store.RunCancelRequestParams{ID: run.ID, Now: time.Now().UTC(), Message: msg})
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	switch {
	case run.State == routine.StateRunning:
		if was != routine.StateRunning {
			s.log.Info("run cancel requested through the API", "run_id", run.ID, "routine", run.Routine, "trace_id", run.TraceID)
		}
		if wait > 0 {
			s.waitRun(w, r, run.ID, wait)
			return
		}
		s.writeRun(w, r, http.StatusAccepted, run)
	case run.State == routine.StateCancelled:
		if was == routine.StateQueued {
			s.log.Info("run cancelled through the API", "run_id", run.ID, "routine", run.Routine, "trace_id", run.TraceID)
		}
		s.writeRun(w, r, http.StatusOK, run)
	default: // it ended otherwise meanwhile
		writeError(w, http.StatusConflict, fmt.Sprintf("run %s already ended %s: only a queued or running run can be cancelled", run.ID, run.State))
	}
}

// rerun answers POST /v1/runs/<id>/rerun: a new run of the ended run's
// routine (its current revision), with its input and trigger payload,
// queued as POST /v1/routines/<name>/runs queues one (?wait= too); the
// new run's trigger is rerun and its replay_of the run it runs again.
func (s *Server) rerun(w http.ResponseWriter, r *http.Request) {
	s.runAgain(w, r, routine.TriggerRerun, func(run *routine.Run) string {
		if !run.State.Final() {
			return fmt.Sprintf("run %s is %s: only a run that ended can be re-run; cancel it first, or wait for its end", run.ID, run.State)
		}
		return ""
	})
}

// replay answers POST /v1/dlq/<id>/replay: a new run of the dead run's
// routine (its current revision), with the dead run's input and trigger
// payload, queued as POST /v1/routines/<name>/runs queues one (?wait=
// too); the new run records replay_of.
func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	s.runAgain(w, r, routine.TriggerReplay, func(run *routine.Run) string {
		if run.State != routine.StateDead {
			return fmt.Sprintf("run %s is %s, not dead: only dead-lettered runs are replayed", run.ID, run.State)
		}
		return ""
	})
}

// runAgain queues a new run of the routine of the run in the path, with
// its input and trigger payload, as a trigger of kind: a replay or a
// re-run. refuse says why the run may not be run again (409), or "".
func (s *Server) runAgain(w http.ResponseWriter, r *http.Request, kind string, refuse func(*routine.Run) string) {
	old, ok := s.findRun(w, r)
	if !ok {
		return
	}
	if why := refuse(old); why != "" {
		writeError(w, http.StatusConflict, why)
		return
	}
	rt, ok := s.cfg.Routines.Get(old.Routine)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("cannot run %s again: no routine %q is served here any more", old.ID, old.Routine))
		return
	}
	if err := rt.CheckInput(old.Input); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot run %s again with the current %s: %v", old.ID, rt.Name, err))
		return
	}
	s.enqueueRequest(w, r, &scheduler.Request{
		Routine:  rt,
		Trigger:  routine.TriggerInfo{Kind: kind, Payload: old.Trigger.Payload},
		Input:    old.Input,
		ReplayOf: old.ID,
	})
}

// listRoutines answers GET /v1/routines: the routines served, by name.
func (s *Server) listRoutines(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	out := []api.Routine{}
	for _, rt := range s.cfg.Routines.All() {
		if !s.sees(r, rt.Name) {
			continue
		}
		e := api.Routine{Name: rt.Name, Description: rt.Description, Revision: rt.Revision, Triggers: []string{},
			Next: NextFire(r.Context(), s.cfg.Store, rt, now)}
		for i := range rt.Triggers {
			e.Triggers = append(e.Triggers, rt.Triggers[i].Describe())
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
}

// NextFire returns when a cron or every trigger of rt fires it next after
// now, or nil when it has none. An every: trigger counts from its last
// firing recorded in st (none when st is nil).
func NextFire(ctx context.Context, st store.Store, rt *routine.Routine, now time.Time) *time.Time {
	var next *time.Time
	for i := range rt.Triggers {
		t := &rt.Triggers[i]
		var last time.Time
		if st != nil && t.Kind() == "every" {
			last = scheduler.LastFire(ctx, st, rt.Name, t.Kind())
		}
		fires, err := trigger.NextFires(*t, last, now, 1)
		if err == nil && len(fires) > 0 && (next == nil || fires[0].Before(*next)) {
			next = &fires[0]
		}
	}
	return next
}
