package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

// TestHTTPStepRetriesThroughRunOnce runs an http step through run-once
// against a server that answers 503 with Retry-After: 1 twice, then 201:
// the run succeeds on attempt 3, each retry waits the second the server
// asked for (not the 10ms backoff), and the next step reads the json
// output.
func TestHTTPStepRetriesThroughRunOnce(t *testing.T) {
	t.Parallel()
	const token = "tok-5f1e9a7c"
	var (
		mu       sync.Mutex
		arrivals []time.Time
		comments []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/tickets/42/comments" {
			comments = append(comments, string(body))
			w.WriteHeader(http.StatusCreated)
			return
		}
		if r.URL.Path != "/tickets" || r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+token ||
			string(body) != `{"subject":"Printer on fire"}` || r.URL.RawQuery != "source=routines" {
			t.Errorf("unexpected request %s %s?%s %q %q", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		arrivals = append(arrivals, time.Now())
		if len(arrivals) < 3 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy, try later")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id": 42}`)
	}))
	defer srv.Close()

	dir := writeRoutine(t, `name: flaky-crm
secrets: [CRM_TOKEN]
inputs:
  api: { required: true }
  subject: { required: true }
steps:
  - id: ticket
    retry: { attempts: 5, backoff: constant, initial: 10ms, jitter: false }
    http:
      method: POST
      url: "{{ input.api }}/tickets"
      headers: { Authorization: "Bearer {{CRM_TOKEN}}" }
      query: { source: routines }
      json: { subject: "{{ input.subject }}" }
  - id: comment
    http:
      method: POST
      url: "{{ input.api }}/tickets/{{ steps.ticket.outputs.json.id }}/comments"
      body: "opened by run {{ run.id }}"
`)
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"CRM_TOKEN": token})}
	code, stdout, stderr := clitest.RunCLIWith(t, deps, "--project", dir, "run-once", dir, "-i", "api="+srv.URL, "-i", "subject=Printer on fire")
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 3 {
		t.Fatalf("%d tries reached the server, want 3", len(arrivals))
	}
	for i := 1; i < 3; i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < time.Second {
			t.Fatalf("try %d came %s after the one before, sooner than Retry-After: 1", i+1, gap)
		}
	}
	for n := 1; n <= 2; n++ {
		want := "attempt " + string(rune('0'+n)) + "/5 failed: http: POST " + srv.URL + "/tickets → 503 Service Unavailable: busy, try later; retrying in 1s"
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "[ticket] POST "+srv.URL+"/tickets → 201 (10 B, ") || strings.Contains(stdout, token) {
		t.Fatalf("output:\n%s", stdout)
	}
	if len(comments) != 1 || !strings.HasPrefix(comments[0], "opened by run ") {
		t.Fatalf("comments %q", comments)
	}
	runID := strings.TrimPrefix(comments[0], "opened by run ")

	code, stdout, stderr = clitest.RunCLI(t, "--project", dir, "show", runID, "-o", "json")
	var detail struct {
		State string `json:"state"`
		Steps []struct {
			ID       string         `json:"id"`
			State    string         `json:"state"`
			Attempts int            `json:"attempts"`
			Outputs  map[string]any `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(stdout), &detail); code != 0 || err != nil {
		t.Fatalf("show: exit %d %v\n%s\n%s", code, err, stdout, stderr)
	}
	if detail.State != "succeeded" || len(detail.Steps) != 2 {
		t.Fatalf("run %+v", detail)
	}
	ticket := detail.Steps[0]
	// The answer's JSON is kept as structure, as the next step navigated it.
	if ticket.ID != "ticket" || ticket.Attempts != 3 || ticket.Outputs["status"] != "201" || !reflect.DeepEqual(ticket.Outputs["json"], map[string]any{"id": 42.0}) {
		t.Fatalf("ticket step %+v", ticket)
	}
}
