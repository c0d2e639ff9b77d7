package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

const statusToken = "status-token"

// vault is a secret store the test fills while the server runs.
type vault struct {
	mu     sync.Mutex
	values map[string]string
}

func (v *vault) set(name, value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.values[name] = value
}

func (v *vault) lookup(_ context.Context, _ *routine.Routine, ref routine.SecretRef) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	value, ok := v.values[ref.Name]
	if !ok {
		return "", fmt.Errorf("secret %s is not set: store it with `routines secrets set %s`", ref.Name, ref.Name)
	}
	return value, nil
}

// lockedBuffer is the log of a server, read by the test meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// statusSetup serves the routine hook (a webhook at /hooks/in signed
// with HOOK_KEY) and triage (the slash command /triage signed with
// SLACK_SIGNING_SECRET), with an empty vault and an API token.
func statusSetup(t *testing.T) (*httptest.Server, *vault, *lockedBuffer) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hook := &routine.Routine{Name: "hook", Secrets: []routine.SecretRef{{Name: "HOOK_KEY"}},
		Triggers: []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "/in", Secret: "{{HOOK_KEY}}"}}}}
	triage := &routine.Routine{Name: "triage", Secrets: []routine.SecretRef{{Name: "SLACK_SIGNING_SECRET"}},
		Triggers: []routine.Trigger{{SlackCommand: &routine.SlackCommandTrigger{Command: "/triage", SigningSecret: "{{SLACK_SIGNING_SECRET}}"}}}}
	v := &vault{values: map[string]string{}}
	logs := &lockedBuffer{}
	srv := server.New(server.Config{
		Store: st, Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog([]*routine.Routine{hook, triage}),
		Token: statusToken, Secret: v.lookup, Project: "/srv/project",
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, v, logs
}

// postHook posts a body to /hooks/in, signed with key unless it is "",
// and returns the status, headers and body of the answer.
func postHook(t *testing.T, ts *httptest.Server, key string) (int, http.Header, string) {
	t.Helper()
	body := `{"n":1}`
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/hooks/in", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		req.Header.Set("X-Routines-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	return do(t, req)
}

// do sends req and returns the status, headers and body of the answer.
func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(data)
}

// getStatus reads GET /v1/status with the API token.
func getStatus(t *testing.T, ts *httptest.Server) api.Status {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+statusToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st api.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK || st.Problems == nil {
		t.Fatalf("GET /v1/status: %d %v %+v", resp.StatusCode, err, st)
	}
	return st
}

// A webhook whose secret is not set answers every caller, signed or not,
// 503 naming nothing; the operator reads the cause in the log, once for
// all the calls, and as a problem in GET /v1/status, until the secret is
// set: then the webhook works and the problem is gone.
func TestWebhookSecretNotSet(t *testing.T) {
	t.Parallel()
	ts, v, logs := statusSetup(t)
	for i := range 6 {
		key := ""
		if i%2 == 1 {
			key = "a guess"
		}
		code, header, body := postHook(t, ts, key)
		if code != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || strings.TrimSpace(body) != `{"error":"this webhook is not available"}` {
			t.Fatalf("call %d: %d %v %s", i, code, header, body)
		}
		if strings.Contains(fmt.Sprint(header), "HOOK_KEY") {
			t.Fatalf("the headers name the secret: %v", header)
		}
	}
	if got := logs.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "level=WARN") ||
		!strings.Contains(got, "routine=hook") || !strings.Contains(got, "path=/in") || !strings.Contains(got, "secret=HOOK_KEY") ||
		!strings.Contains(got, "routines secrets set HOOK_KEY") || !strings.Contains(got, "project=/srv/project") {
		t.Fatalf("want the cause logged once, with the routine, path, secret, how to set it and where:\n%s", got)
	}

	// /v1/status needs the token like the rest of /v1.
	resp, err := http.Get(ts.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/status without the token: %d", resp.StatusCode)
	}
	st := getStatus(t, ts)
	if len(st.Problems) != 1 {
		t.Fatalf("problems: %+v", st.Problems)
	}
	p := st.Problems[0]
	if p.Routine != "hook" || p.Trigger != "webhook /hooks/in" || !strings.Contains(p.Message, "secret HOOK_KEY is not set") ||
		p.Count != 6 || p.FirstSeen.IsZero() || p.LastSeen.Before(p.FirstSeen) {
		t.Fatalf("problem: %+v", p)
	}

	v.set("HOOK_KEY", "the key")
	if code, _, body := postHook(t, ts, "the key"); code != http.StatusAccepted {
		t.Fatalf("after the secret was set: %d %s", code, body)
	}
	if st := getStatus(t, ts); len(st.Problems) != 0 {
		t.Fatalf("problems after the secret was set: %+v", st.Problems)
	}
	if got := logs.String(); strings.Count(got, "available again") != 1 || !strings.Contains(got, "failures=6") {
		t.Fatalf("want one line saying the webhook works again:\n%s", got)
	}
	// A wrong signature now is the caller's fault, and 401 as before.
	if code, _, _ := postHook(t, ts, "a guess"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong signature: %d", code)
	}
}

// The same for a Slack command whose signing secret is not set.
func TestSlackSigningSecretNotSet(t *testing.T) {
	t.Parallel()
	ts, v, logs := statusSetup(t)
	for i := range 4 {
		code, body := postSlackRaw(t, ts, slashCommand("/triage", "x"), []string{"", "a guess"}[i%2])
		if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != `{"error":"this webhook is not available"}` {
			t.Fatalf("call %d: %d %s", i, code, body)
		}
	}
	if got := logs.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "secret=SLACK_SIGNING_SECRET") || !strings.Contains(got, "command=/triage") {
		t.Fatalf("log:\n%s", got)
	}
	st := getStatus(t, ts)
	if len(st.Problems) != 1 || st.Problems[0].Trigger != "slack_command /triage" || st.Problems[0].Count != 4 {
		t.Fatalf("problems: %+v", st.Problems)
	}
	v.set("SLACK_SIGNING_SECRET", slackTestSecret)
	if code, _ := postSlack(t, ts, slashCommand("/triage", "x"), slackTestSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("after the secret was set: %d", code)
	}
	if st := getStatus(t, ts); len(st.Problems) != 0 {
		t.Fatalf("problems after the secret was set: %+v", st.Problems)
	}
}

// postSlackRaw posts a slash command signed with secret now (unsigned
// when it is "") and returns the status and body.
func postSlackRaw(t *testing.T, ts *httptest.Server, body, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/slack/commands", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		signSlack(req, body, secret, time.Now())
	}
	code, header, answer := do(t, req)
	if strings.Contains(fmt.Sprint(header), "SLACK_SIGNING_SECRET") {
		t.Fatalf("the headers name the secret: %v", header)
	}
	return code, answer
}
