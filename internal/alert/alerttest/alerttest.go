// Package alerttest holds fakes of what alerts notify, on 127.0.0.1, for
// the tests of the evaluator, the daemons and the examples: Slack's Web
// API method chat.postMessage, and a webhook receiver.
package alerttest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/alert"
)

// waitFor bounds how long Wait waits for a notification.
const waitFor = 20 * time.Second

// inbox keeps what a fake received, and fails the next requests on
// demand.
type inbox[T any] struct {
	mu       sync.Mutex
	got      []T
	failNext int
	arrived  chan struct{} // closed and replaced at each arrival
}

func newInbox[T any]() *inbox[T] { return &inbox[T]{arrived: make(chan struct{})} }

// take records v, or reports that the request is to fail.
func (b *inbox[T]) take(v T) (fail bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failNext > 0 {
		b.failNext--
		return true
	}
	b.got = append(b.got, v)
	close(b.arrived)
	b.arrived = make(chan struct{})
	return false
}

// all returns what was received, and a channel closed at the next arrival.
func (b *inbox[T]) all() ([]T, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]T(nil), b.got...), b.arrived
}

// wait returns what was received once there are n, or fails t.
func (b *inbox[T]) wait(t testing.TB, what string, n int) []T {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		got, arrived := b.all()
		if len(got) >= n {
			return got
		}
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("%s: %d received in %s, want %d", what, len(got), waitFor, n)
		}
	}
}

func (b *inbox[T]) fail(n int) {
	b.mu.Lock()
	b.failNext += n
	b.mu.Unlock()
}

// Slack answers chat.postMessage as Slack does: with ok and the message's
// ts when the token is Token, else with invalid_auth.
type Slack struct {
	// URL is the base URL of the fake API, for slack_base_url.
	URL   string
	Token string
	posts *inbox[url.Values]
}

// NewSlack starts a fake Slack API that takes token, closed when t ends.
func NewSlack(t testing.TB, token string) *Slack {
	s := &Slack{Token: token, posts: newInbox[url.Values]()}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/api/"
	return s
}

func (s *Slack) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/chat.postMessage" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.PostForm.Get("token")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case token != s.Token:
		_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
	case s.posts.take(r.PostForm):
		_, _ = io.WriteString(w, `{"ok":false,"error":"service_unavailable"}`)
	default:
		_, _ = io.WriteString(w, `{"ok":true,"channel":"C0123456789","ts":"1700000000.000100"}`)
	}
}

// Posts returns the messages posted so far: each its form (channel, text).
func (s *Slack) Posts() []url.Values {
	got, _ := s.posts.all()
	return got
}

// Wait returns the messages posted once there are n, or fails t.
func (s *Slack) Wait(t testing.TB, n int) []url.Values { return s.posts.wait(t, "slack posts", n) }

// FailNext makes the next n posts fail with Slack's service_unavailable.
func (s *Slack) FailNext(n int) { s.posts.fail(n) }

// Webhook receives the JSON POSTs of alerts and answers 204, or 503 when
// told to fail.
type Webhook struct {
	URL      string
	payloads *inbox[alert.Payload]
}

// NewWebhook starts a webhook receiver, closed when t ends.
func NewWebhook(t testing.TB) *Webhook {
	h := &Webhook{payloads: newInbox[alert.Payload]()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alert.Payload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if h.payloads.take(p) {
			http.Error(w, "down for a while", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/alerts"
	return h
}

// Payloads returns the payloads received so far.
func (h *Webhook) Payloads() []alert.Payload {
	got, _ := h.payloads.all()
	return got
}

// Wait returns the payloads received once there are n, or fails t.
func (h *Webhook) Wait(t testing.TB, n int) []alert.Payload {
	return h.payloads.wait(t, "webhook payloads", n)
}

// FailNext makes the next n requests fail with 503.
func (h *Webhook) FailNext(n int) { h.payloads.fail(n) }
