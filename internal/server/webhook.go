package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/trigger"
)

// maxBody is the largest request body accepted: 1 MiB.
const maxBody = 1 << 20

// TriggerWebhook is the trigger kind of runs fired by a webhook.
const TriggerWebhook = "webhook"

// secretRef matches a secret written as a reference, {{NAME}}.
var secretRef = regexp.MustCompile(`^\{\{\s*([A-Z_][A-Z0-9_]*)\s*\}\}$`)

// hook receives POST /hooks/<path>: it finds the routine whose webhook
// trigger has that path, checks the signature, and queues a run whose
// event is the body.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	path := "/" + strings.Trim(r.PathValue("path"), "/")
	rt, wh := s.findHook(path)
	if rt == nil {
		s.rejected(TriggerWebhook, nil, metrics.ReasonNotFound)
		writeError(w, http.StatusNotFound, "no routine has a webhook at "+path)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.rejected(TriggerWebhook, rt, bodyReason(err))
		bodyError(w, err)
		return
	}
	if wh.Secret != "" {
		trig := "webhook /hooks" + path
		secret, name, err := s.resolveSecret(r.Context(), rt, wh.Secret)
		if err != nil {
			s.secretFailed(rt, trig, err, "path", path, "secret", name)
			s.rejected(TriggerWebhook, rt, metrics.ReasonSecretUnavailable)
			writeUnavailable(w)
			return
		}
		s.secretResolved(rt, trig)
		refused := rt.Name + " " + trig + " refused"
		if err := trigger.VerifyHMAC([]byte(secret), body, r.Header.Get(trigger.SignatureHeader(wh.Provider))); err != nil {
			s.repeats.Log(s.log, slog.LevelWarn, refused, "webhook refused: "+err.Error(), "routine", rt.Name, "path", path)
			s.rejected(TriggerWebhook, rt, metrics.ReasonBadSignature)
			writeError(w, http.StatusUnauthorized, err.Error()+" ("+trigger.SignatureHeader(wh.Provider)+": sha256=<hex HMAC-SHA256 of the body>)")
			return
		}
		s.repeats.OK(refused)
	}
	if len(wh.Events) > 0 && !trigger.NewEventFilter(wh.Events).Match(r.Header.Get(trigger.HeaderGitHubEvent), body) {
		s.rejected(TriggerWebhook, rt, metrics.ReasonFiltered)
		writeJSON(w, http.StatusOK, map[string]any{"ignored": true, "reason": "event not in events:"})
		return
	}
	payload, err := eventPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
		s.rejected(TriggerWebhook, rt, metrics.ReasonBadRequest)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.enqueue(w, r, rt, routine.TriggerInfo{Kind: TriggerWebhook, Payload: payload}, nil)
}

// findHook returns the routine with a webhook trigger at path, and that trigger.
func (s *Server) findHook(path string) (*routine.Routine, *routine.WebhookTrigger) {
	for _, rt := range s.cfg.Routines.All() {
		for i := range rt.Triggers {
			wh := rt.Triggers[i].Webhook
			if wh != nil && "/"+strings.Trim(wh.Path, "/") == path {
				return rt, wh
			}
		}
	}
	return nil, nil
}

// unavailable is all a caller of a webhook or Slack command whose secret
// does not resolve is told: anyone may call, so it names nothing.
const unavailable = "this webhook is not available"

// writeUnavailable answers a caller of a webhook or Slack command whose
// secret does not resolve: 503, naming nothing, and when to try again.
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	writeError(w, http.StatusServiceUnavailable, unavailable)
}

// secretFailed tells the operator that the secret of the trigger trig of
// rt does not resolve: in the log once, then at backoff, with args, and in
// the problems of GET /v1/status.
func (s *Server) secretFailed(rt *routine.Routine, trig string, err error, args ...any) {
	args = append([]any{"routine", rt.Name}, args...)
	if s.cfg.Project != "" {
		args = append(args, "project", s.cfg.Project)
	}
	s.repeats.Log(s.log, slog.LevelWarn, rt.Name+" "+trig, trig+" answers 503 until its secret resolves: "+err.Error(), args...)
	s.problems.Report(rt.Name, trig, err.Error())
}

// secretResolved notes that the secret of trig resolves: a failure
// secretFailed reported is over.
func (s *Server) secretResolved(rt *routine.Routine, trig string) {
	s.repeats.Recovered(s.log, rt.Name+" "+trig, trig+" is available again: its secret resolves", "routine", rt.Name)
	s.problems.Clear(rt.Name, trig)
}

// resolveSecret returns a webhook secret of routine rt: the value of a
// {{NAME}} reference to a secret it declares, or the literal; and the
// secret's name ("" for a literal).
func (s *Server) resolveSecret(ctx context.Context, rt *routine.Routine, v string) (value, name string, err error) {
	m := secretRef.FindStringSubmatch(v)
	if m == nil {
		return v, "", nil
	}
	ref := routine.SecretRef{Name: m[1]}
	for _, declared := range rt.Secrets {
		if declared.Name == ref.Name {
			ref = declared
		}
	}
	if s.cfg.Secret != nil {
		value, err = s.cfg.Secret(ctx, rt, ref)
		return value, ref.Name, err
	}
	value, ok := os.LookupEnv(ref.Name)
	if !ok {
		return "", ref.Name, fmt.Errorf("webhook secret %s is not set in the daemon's environment: set it there, and restart the daemon", ref.Name)
	}
	return value, ref.Name, nil
}

// eventPayload turns a body into the run's event: JSON as it is, a form
// as an object of strings (lists for repeated keys), nothing as {}. A
// body that is valid JSON is taken as JSON whatever its Content-Type,
// because curl -d labels JSON as a form.
func eventPayload(contentType string, body []byte) (json.RawMessage, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if json.Valid(body) {
		return json.RawMessage(body), nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("malformed form body: %w", err)
		}
		obj := make(map[string]any, len(vals))
		for k, v := range vals {
			if len(v) == 1 {
				obj[k] = v[0]
			} else {
				obj[k] = v
			}
		}
		return json.Marshal(obj)
	}
	var v any
	err := json.Unmarshal(body, &v)
	if err == nil {
		err = errors.New("invalid JSON")
	}
	return nil, fmt.Errorf("malformed JSON body: %v (send JSON, or a form with Content-Type: application/x-www-form-urlencoded)", err)
}
