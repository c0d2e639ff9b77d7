package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

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
		writeError(w, http.StatusNotFound, "no routine has a webhook at "+path)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	if wh.Secret != "" {
		secret, err := s.resolveSecret(r.Context(), rt, wh.Secret)
		if err != nil {
			s.log.Error("webhook secret", "routine", rt.Name, "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if err := trigger.VerifyHMAC([]byte(secret), body, r.Header.Get(trigger.SignatureHeader(wh.Provider))); err != nil {
			s.log.Warn("webhook refused", "routine", rt.Name, "path", path, "err", err)
			writeError(w, http.StatusUnauthorized, err.Error()+" ("+trigger.SignatureHeader(wh.Provider)+": sha256=<hex HMAC-SHA256 of the body>)")
			return
		}
	}
	if len(wh.Events) > 0 && !trigger.NewEventFilter(wh.Events).Match(r.Header.Get(trigger.HeaderGitHubEvent), body) {
		writeJSON(w, http.StatusOK, map[string]any{"ignored": true, "reason": "event not in events:"})
		return
	}
	payload, err := eventPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
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

// resolveSecret returns a webhook secret of routine rt: the value of a
// {{NAME}} reference to a secret it declares, or the literal.
func (s *Server) resolveSecret(ctx context.Context, rt *routine.Routine, v string) (string, error) {
	m := secretRef.FindStringSubmatch(v)
	if m == nil {
		return v, nil
	}
	ref := routine.SecretRef{Name: m[1]}
	for _, declared := range rt.Secrets {
		if declared.Name == ref.Name {
			ref = declared
		}
	}
	if s.cfg.Secret != nil {
		return s.cfg.Secret(ctx, rt.Name, ref)
	}
	val, ok := os.LookupEnv(ref.Name)
	if !ok {
		return "", fmt.Errorf("webhook secret %s is not set in the daemon's environment", ref.Name)
	}
	return val, nil
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
