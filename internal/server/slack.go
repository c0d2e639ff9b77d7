package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/template"
	"github.com/routines-dev/routines/internal/trigger"
)

// TriggerSlackCommand is the trigger kind of runs fired by a Slack slash
// command.
const TriggerSlackCommand = "slack_command"

// slackEventFields are the fields of a slash command that the event
// always has, empty when Slack sent none.
var slackEventFields = []string{"command", "text", "user_id", "user_name", "channel_id", "channel_name", "team_id", "team_domain", "response_url", "trigger_id"}

// slackCommand receives POST /slack/commands, the Request URL of every
// slash command of the Slack app: the command field picks the routine
// whose slack_command trigger has it. A signed request is queued as a run
// before the answer, an ephemeral message that only the user who typed
// the command sees. Slack shows a non-200 answer as a bare failure, so a
// signed command that no routine handles is answered 200 with a message
// saying so; an unsigned one learns nothing and gets 401.
func (s *Server) slackCommand(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.rejected(TriggerSlackCommand, nil, bodyReason(err))
		bodyError(w, err)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.rejected(TriggerSlackCommand, nil, metrics.ReasonBadRequest)
		writeError(w, http.StatusBadRequest, "malformed form body: "+err.Error())
		return
	}
	command := form.Get("command")
	rt, sc, candidates := s.findCommand(command)
	if len(candidates) == 0 {
		s.rejected(TriggerSlackCommand, nil, metrics.ReasonNotFound)
		writeError(w, http.StatusNotFound, "no routine has a slack_command trigger")
		return
	}
	ts, sig := r.Header.Get(trigger.HeaderSlackTimestamp), r.Header.Get(trigger.HeaderSlackSignature)
	now := time.Now()
	// The routine's signing secret, or, for a command no routine handles,
	// that of any slack_command trigger (usually all are one app's).
	var (
		verr       error
		verified   bool
		unresolved bool // a candidate's secret did not resolve
	)
	for _, c := range candidates {
		trig := "slack_command " + c.trig.Command
		secret, name, err := s.resolveSecret(r.Context(), c.rt, c.trig.SigningSecret)
		if err != nil {
			s.secretFailed(c.rt, trig, err, "command", c.trig.Command, "secret", name)
			unresolved = true
			continue
		}
		s.secretResolved(c.rt, trig)
		if verr = trigger.VerifySlack(secret, ts, body, sig, now); verr == nil {
			verified = true
			break
		}
		if errors.Is(verr, trigger.ErrStaleRequest) || errors.Is(verr, trigger.ErrNoSignature) {
			break
		}
	}
	switch {
	case verified:
		s.repeats.OK("slack refused")
	case unresolved:
		// The request may be signed with the secret that did not resolve.
		s.rejected(TriggerSlackCommand, rt, metrics.ReasonSecretUnavailable)
		writeUnavailable(w)
		return
	default:
		s.repeats.Log(s.log, slog.LevelWarn, "slack refused", "slack command refused: "+verr.Error(), "command", command)
		s.rejected(TriggerSlackCommand, rt, metrics.ReasonBadSignature)
		writeError(w, http.StatusUnauthorized, "slack request refused: "+verr.Error())
		return
	}
	if rt == nil {
		s.rejected(TriggerSlackCommand, nil, metrics.ReasonNotFound)
		writeJSON(w, http.StatusOK, slackReply("No routine handles "+command+" here."))
		return
	}
	event := make(map[string]any, len(form))
	for k, v := range form {
		if k != "token" { // Slack's deprecated verification token: a credential
			event[k] = v[0]
		}
	}
	for _, k := range slackEventFields {
		if _, ok := event[k]; !ok {
			event[k] = ""
		}
	}
	payload, err := json.Marshal(event)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	if s.full(w, r, TriggerSlackCommand, rt, rt) {
		return
	}
	run, _, err := s.cfg.Queue.Enqueue(r.Context(), &scheduler.Request{Routine: rt, Trigger: routine.TriggerInfo{Kind: TriggerSlackCommand, Payload: payload}})
	if err != nil {
		writeEnqueueError(w, r, err)
		return
	}
	text := "Queued run " + run.ID
	if sc.Reply != "" {
		if t, err := template.Parse(sc.Reply); err != nil {
			s.log.Warn("slack command reply", "routine", rt.Name, "err", err)
		} else if out, err := t.Render(&template.Context{Event: event, Env: rt.Env, Routine: template.RoutineInfo{Name: rt.Name, Revision: rt.Revision}}); err != nil {
			s.log.Warn("slack command reply", "routine", rt.Name, "run_id", run.ID, "trace_id", run.TraceID, "err", err)
		} else {
			text = out
		}
	}
	writeJSON(w, http.StatusOK, slackReply(text))
}

// slackReply is an answer to a slash command that only its user sees.
func slackReply(text string) map[string]string {
	return map[string]string{"response_type": "ephemeral", "text": text}
}

// commandTrigger is a slack_command trigger and its routine.
type commandTrigger struct {
	rt   *routine.Routine
	trig *routine.SlackCommandTrigger
}

// findCommand returns the routine whose slack_command trigger has command
// and that trigger, and the triggers whose signing secret may verify the
// request: that one, or, when no routine has the command, every
// slack_command trigger.
func (s *Server) findCommand(command string) (*routine.Routine, *routine.SlackCommandTrigger, []commandTrigger) {
	var all []commandTrigger
	for _, rt := range s.cfg.Routines.All() {
		for i := range rt.Triggers {
			sc := rt.Triggers[i].SlackCommand
			if sc == nil {
				continue
			}
			if command != "" && sc.Command == command {
				return rt, sc, []commandTrigger{{rt, sc}}
			}
			all = append(all, commandTrigger{rt, sc})
		}
	}
	return nil, nil, all
}
