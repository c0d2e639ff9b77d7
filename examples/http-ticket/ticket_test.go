// Package httpticket is the example of the http step: a routine opens a
// ticket in a CRM's REST API, retrying while the CRM answers 503, then
// labels it. Its test plays the CRM with an in-process server whose URL
// the run gets as --input crm_url.
package httpticket

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

const token = "crm-token-7d3f1b"

// crm is a small ticket API: POST /tickets (JSON) and PUT
// /tickets/<id>/labels (a form), behind a bearer token. The first busy
// POSTs answer 503, the first of them with Retry-After: 1.
type crm struct {
	mu      sync.Mutex
	busy    int
	posts   []post
	tickets map[string]map[string]string // id → the ticket's JSON fields
	labels  map[string][]string
}

// post is one POST /tickets as it arrived.
type post struct {
	at              time.Time
	idempotencyKey  string
	source, subject string
}

func (c *crm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid token"}`)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/tickets":
		var fields map[string]string
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&fields) != nil {
			http.Error(w, "want a JSON object of strings", http.StatusBadRequest)
			return
		}
		c.posts = append(c.posts, post{time.Now(), r.Header.Get("Idempotency-Key"), r.URL.Query().Get("source"), fields["subject"]})
		if len(c.posts) <= c.busy {
			if len(c.posts) == 1 {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		id := fmt.Sprintf("T-%d", 1000+len(c.tickets)+1)
		c.tickets[id] = fields
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/tickets/"+id)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"id": id, "status": "open"})
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/labels"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/tickets/"), "/labels")
		if _, ok := c.tickets[id]; !ok || r.ParseForm() != nil {
			http.Error(w, "no such ticket", http.StatusNotFound)
			return
		}
		c.labels[id] = append(c.labels[id], r.PostForm.Get("label"))
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// runOnce runs the routine once with CRM_TOKEN set to tok in the
// environment, against the CRM at url, and returns the exit code, the run
// as -o json prints it, and the live log.
func runOnce(t *testing.T, dir, tok, url string) (int, string, string) {
	t.Helper()
	env := map[string]string{
		"CRM_TOKEN":                tok,
		"ROUTINES_MASTER_KEY":      "",
		"ROUTINES_MASTER_KEY_FILE": filepath.Join(t.TempDir(), "master.key"),
	}
	deps := cli.Deps{Getenv: func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}}
	return clitest.RunCLIWith(t, deps, "--project", dir, "run-once", dir,
		"--input", "crm_url="+url, "--input", "subject=Invoice 2026-114 is wrong", "--input", "from=ada@example.com", "-o", "json")
}

func TestTicketIsOpenedDespiteABusyCRM(t *testing.T) {
	t.Parallel()
	dir := clitest.CopyProject(t, ".")
	c := &crm{busy: 2, tickets: map[string]map[string]string{}, labels: map[string][]string{}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	code, js, out := runOnce(t, dir, token, srv.URL)
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s%s", code, js, out)
	}
	var run struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(js), &run); err != nil || run.State != "succeeded" {
		t.Fatalf("run %+v (%v):\n%s", run, err, js)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.posts) != 3 {
		t.Fatalf("%d POSTs, want 3 (two busy, one created):\n%s", len(c.posts), out)
	}
	for _, p := range c.posts {
		if p.idempotencyKey != run.ID || p.source != "routines" || p.subject != "Invoice 2026-114 is wrong" {
			t.Fatalf("POST %+v, want Idempotency-Key %s", p, run.ID)
		}
	}
	if gap := c.posts[1].at.Sub(c.posts[0].at); gap < time.Second {
		t.Fatalf("the second try came %s after the first, sooner than its Retry-After: 1", gap)
	}
	want := map[string]string{"subject": "Invoice 2026-114 is wrong", "from": "ada@example.com", "priority": "normal"}
	if got := c.tickets["T-1001"]; len(c.tickets) != 1 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tickets %v", c.tickets)
	}
	if got := c.labels["T-1001"]; len(got) != 1 || got[0] != "support" {
		t.Fatalf("labels %v", c.labels)
	}
	for _, line := range []string{
		"attempt 1/5 failed: http: POST " + srv.URL + "/tickets → 503 Service Unavailable: busy; retrying in 1s",
		"[ticket] POST " + srv.URL + "/tickets → 201 (",
		"[label] PUT " + srv.URL + "/tickets/T-1001/labels → 204 (0 B, ",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("the output lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out+js, token) {
		t.Fatalf("the output shows the token:\n%s", out)
	}
}

func TestAWrongTokenFailsAtOnce(t *testing.T) {
	t.Parallel()
	dir := clitest.CopyProject(t, ".")
	c := &crm{tickets: map[string]map[string]string{}, labels: map[string][]string{}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	code, js, out := runOnce(t, dir, "revoked-token", srv.URL)
	if code != 1 {
		t.Fatalf("run-once: exit %d, want 1\n%s%s", code, js, out)
	}
	var run struct {
		State string `json:"state"`
		Error struct {
			Code      string `json:"code"`
			Step      string `json:"step"`
			Attempt   int    `json:"attempt"`
			Retryable bool   `json:"retryable"`
			Message   string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(js), &run); err != nil {
		t.Fatalf("%v:\n%s", err, js)
	}
	e := run.Error
	if run.State != "failed" || e.Code != "auth" || e.Step != "ticket" || e.Attempt != 1 || e.Retryable ||
		!strings.Contains(e.Message, `401 Unauthorized: {"error":"invalid token"}`) {
		t.Fatalf("run %+v", run)
	}
	if len(c.tickets) != 0 {
		t.Fatalf("tickets %v", c.tickets)
	}
}
