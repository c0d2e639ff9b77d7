package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

const slackTestSecret = "slack-signing-test-secret"

// slackSetup serves a routine with the slash command /triage, whose
// signing secret is SLACK_SIGNING_SECRET.
func slackSetup(t *testing.T) (*httptest.Server, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	triage := &routine.Routine{
		Name:    "triage",
		Env:     map[string]string{"TEAM": "support"},
		Secrets: []routine.SecretRef{{Name: "SLACK_SIGNING_SECRET"}},
		Triggers: []routine.Trigger{{SlackCommand: &routine.SlackCommandTrigger{
			Command: "/triage", SigningSecret: "{{SLACK_SIGNING_SECRET}}",
			Reply: "Got it: triaging {{ event.text }} for {{ env.TEAM }}",
		}}},
	}
	plain := &routine.Routine{
		Name:    "plain",
		Secrets: []routine.SecretRef{{Name: "SLACK_SIGNING_SECRET"}},
		Triggers: []routine.Trigger{{SlackCommand: &routine.SlackCommandTrigger{
			Command: "/plain", SigningSecret: "{{SLACK_SIGNING_SECRET}}",
		}}},
	}
	srv := server.New(server.Config{
		Store:    st,
		Queue:    scheduler.NewQueue(st, nil, nil),
		Routines: scheduler.NewCatalog([]*routine.Routine{triage, plain}),
		Secret: func(_ context.Context, _ *routine.Routine, ref routine.SecretRef) (string, error) {
			if ref.Name != "SLACK_SIGNING_SECRET" {
				return "", fmt.Errorf("secret %s is not set", ref.Name)
			}
			return slackTestSecret, nil
		},
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, st
}

// slashCommand is a form body as Slack sends it.
func slashCommand(command, text string) string {
	return url.Values{
		"token":        {"legacy-verification-token"},
		"team_id":      {"T1DC2JH3J"},
		"team_domain":  {"testteam"},
		"channel_id":   {"C2147483705"},
		"channel_name": {"support"},
		"user_id":      {"U2147483697"},
		"user_name":    {"ada"},
		"command":      {command},
		"text":         {text},
		"response_url": {"https://hooks.slack.com/commands/T1DC2JH3J/1/abc"},
		"trigger_id":   {"13345224609.738474920.8088930838d88f008e0"},
	}.Encode()
}

// postSlack posts body signed with secret at time at, and decodes the answer.
func postSlack(t *testing.T, ts *httptest.Server, body, secret string, at time.Time) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/slack/commands", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	signSlack(req, body, secret, at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var v map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, v
}

// signSlack signs req, whose body is body, with secret at time at, as
// Slack does.
func signSlack(req *http.Request, body, secret string, at time.Time) {
	stamp := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + stamp + ":" + body))
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
}

func queuedRuns(t *testing.T, st store.Store) []*routine.Run {
	t.Helper()
	runs, err := st.RunList(context.Background(), &store.RunListParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestSlackCommandQueuesRun(t *testing.T) {
	t.Parallel()
	ts, st := slackSetup(t)
	code, v := postSlack(t, ts, slashCommand("/triage", "printer on fire"), slackTestSecret, time.Now())
	if code != http.StatusOK || v["response_type"] != "ephemeral" || v["text"] != "Got it: triaging printer on fire for support" {
		t.Fatalf("%d %v", code, v)
	}
	runs := queuedRuns(t, st)
	if len(runs) != 1 || runs[0].Routine != "triage" || runs[0].Trigger.Kind != server.TriggerSlackCommand {
		t.Fatalf("runs: %+v", runs)
	}
	var event map[string]string
	if err := json.Unmarshal(runs[0].Trigger.Payload, &event); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"command": "/triage", "text": "printer on fire", "user_id": "U2147483697", "user_name": "ada",
		"channel_id": "C2147483705", "channel_name": "support", "team_id": "T1DC2JH3J", "team_domain": "testteam",
		"response_url": "https://hooks.slack.com/commands/T1DC2JH3J/1/abc", "trigger_id": "13345224609.738474920.8088930838d88f008e0",
	}
	for k, w := range want {
		if event[k] != w {
			t.Errorf("event.%s = %q, want %q", k, event[k], w)
		}
	}
	if _, ok := event["token"]; ok {
		t.Errorf("the verification token reached the event: %v", event)
	}
}

func TestSlackCommandDefaultReply(t *testing.T) {
	t.Parallel()
	ts, st := slackSetup(t)
	code, v := postSlack(t, ts, slashCommand("/plain", ""), slackTestSecret, time.Now())
	runs := queuedRuns(t, st)
	if code != http.StatusOK || len(runs) != 1 || v["text"] != "Queued run "+runs[0].ID || v["response_type"] != "ephemeral" {
		t.Fatalf("%d %v %+v", code, v, runs)
	}
}

func TestSlackCommandRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		secret string
		at     time.Time
		want   string
	}{
		{name: "wrong secret", secret: "not-the-secret", at: time.Now(), want: "signature does not match"},
		{name: "replayed", secret: slackTestSecret, at: time.Now().Add(-6 * time.Minute), want: "more than 5 minutes"},
		{name: "from the future", secret: slackTestSecret, at: time.Now().Add(6 * time.Minute), want: "more than 5 minutes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts, st := slackSetup(t)
			code, v := postSlack(t, ts, slashCommand("/triage", "x"), c.secret, c.at)
			if code != http.StatusUnauthorized || !strings.Contains(v["error"], c.want) {
				t.Fatalf("%d %v", code, v)
			}
			if runs := queuedRuns(t, st); len(runs) != 0 {
				t.Fatalf("queued %d runs", len(runs))
			}
		})
	}
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		ts, st := slackSetup(t)
		resp, err := http.Post(ts.URL+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader(slashCommand("/triage", "x")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || len(queuedRuns(t, st)) != 0 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		ts, st := slackSetup(t)
		body := slashCommand("/triage", "x")
		stamp := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(slackTestSecret))
		mac.Write([]byte("v0:" + stamp + ":" + body))
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/slack/commands", strings.NewReader(body+"&text=rm+-rf"))
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
		req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || len(queuedRuns(t, st)) != 0 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
}

// A signed command that no routine handles gets an answer Slack shows;
// an unsigned one learns nothing.
func TestSlackCommandUnknown(t *testing.T) {
	t.Parallel()
	ts, st := slackSetup(t)
	code, v := postSlack(t, ts, slashCommand("/nope", ""), slackTestSecret, time.Now())
	if code != http.StatusOK || v["response_type"] != "ephemeral" || !strings.Contains(v["text"], "No routine handles /nope") {
		t.Fatalf("%d %v", code, v)
	}
	code, v = postSlack(t, ts, slashCommand("/nope", ""), "not-the-secret", time.Now())
	if code != http.StatusUnauthorized || strings.Contains(v["error"], "/nope") {
		t.Fatalf("unsigned: %d %v", code, v)
	}
	if runs := queuedRuns(t, st); len(runs) != 0 {
		t.Fatalf("queued %d runs", len(runs))
	}
}

func TestSlackCommandBodyLimit(t *testing.T) {
	t.Parallel()
	ts, _ := slackSetup(t)
	body := slashCommand("/triage", strings.Repeat("x", 1<<20))
	code, v := postSlack(t, ts, body, slackTestSecret, time.Now())
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d %v", code, v)
	}
}

// Without any slack_command trigger the endpoint is not there.
func TestSlackCommandNoTriggers(t *testing.T) {
	t.Parallel()
	ts, _ := setup(t, nil)
	resp, err := http.Post(ts.URL+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader(slashCommand("/triage", "")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("%d", resp.StatusCode)
	}
}
