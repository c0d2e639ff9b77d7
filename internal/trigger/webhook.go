package trigger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// The headers of webhook deliveries.
const (
	// HeaderSignature carries the signature of a webhook without provider.
	HeaderSignature = "X-Routines-Signature"
	// HeaderGitHubSignature carries the signature of a provider: github webhook.
	HeaderGitHubSignature = "X-Hub-Signature-256"
	// HeaderGitHubEvent names the event of a GitHub delivery, such as pull_request.
	HeaderGitHubEvent = "X-GitHub-Event"
)

// Errors of VerifyHMAC; the daemon answers both with 401.
var (
	ErrNoSignature  = errors.New("missing signature")
	ErrBadSignature = errors.New("signature does not match")
)

// SignatureHeader returns the header that carries the signature of a
// webhook of the provider ("" or "github").
func SignatureHeader(provider string) string {
	if provider == "github" {
		return HeaderGitHubSignature
	}
	return HeaderSignature
}

// VerifyHMAC checks a signature header of the form sha256=<hex> against
// the HMAC-SHA256 of body keyed with secret, as both Routines and GitHub
// sign deliveries. The comparison takes constant time.
func VerifyHMAC(secret, body []byte, header string) error {
	if header == "" {
		return ErrNoSignature
	}
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	return checkMAC(secret, body, sig)
}

// checkMAC compares a hex HMAC-SHA256 of msg with sig in constant time.
func checkMAC(secret, msg []byte, sig string) error {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(msg)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// EventFilter selects webhook deliveries by the events: of a trigger:
// "push" matches every delivery of the push event, "pull_request.opened"
// only those of pull_request whose body has "action": "opened".
type EventFilter struct {
	events []string
}

// NewEventFilter returns a filter of events; no events match everything.
func NewEventFilter(events []string) EventFilter {
	return EventFilter{events: events}
}

// Match reports whether a delivery of event (the X-GitHub-Event header)
// with body passes the filter. The body is JSON, or a form whose payload
// field is JSON, as GitHub sends either.
func (f EventFilter) Match(event string, body []byte) bool {
	if len(f.events) == 0 {
		return true
	}
	var action string
	actionRead := false
	for _, e := range f.events {
		name, want, dotted := strings.Cut(e, ".")
		if name != event {
			continue
		}
		if !dotted {
			return true
		}
		if !actionRead {
			action, actionRead = bodyAction(body), true
		}
		if action == want {
			return true
		}
	}
	return false
}

// bodyAction returns the top-level "action" of a JSON or form body, or "".
func bodyAction(body []byte) string {
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] != '{' {
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return ""
		}
		body = []byte(form.Get("payload"))
	}
	var v struct {
		Action string `json:"action"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Action
}
