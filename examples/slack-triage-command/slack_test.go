// Package slacktriagecommand is the example of docs/connectors/slack.md: a
// slash command answered by the daemon, whose run posts to Slack. Its test
// plays both sides of Slack: it signs a command the way Slack does and
// serves chat.postMessage in-process.
package slacktriagecommand

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestSlashCommand(t *testing.T) {
	t.Setenv("SLACK_SIGNING_SECRET", "example-signing-secret")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-example")

	// Slack's chat.postMessage, in-process.
	posts := make(chan url.Values, 4)
	var n atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.URL.Path != "/api/chat.postMessage" || r.PostForm.Get("token") != "xoxb-example" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"channel":"C2147483705","ts":"1700000000.00010` + strconv.Itoa(int(n.Add(1))) + `"}`))
		posts <- r.PostForm
	}))
	defer fake.Close()

	// A copy whose steps post to the fake instead of slack.com.
	dir := clitest.CopyProject(t, ".")
	file := filepath.Join(dir, "routine.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "https://slack.com/api/", fake.URL+"/api/", 1))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, out := clitest.Serve(t, dir)

	// The command as Slack sends it, signed with the app's signing secret.
	body := url.Values{
		"command": {"/triage"}, "text": {"printer on fire"},
		"user_id": {"U2147483697"}, "user_name": {"ada"},
		"channel_id": {"C2147483705"}, "channel_name": {"support"}, "team_id": {"T0001"},
		"response_url": {"https://hooks.slack.com/commands/T0001/1/x"}, "trigger_id": {"1.2.3"},
	}.Encode()
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte("example-signing-secret"))
	mac.Write([]byte("v0:" + stamp + ":" + body))
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/slack/commands", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || reply["response_type"] != "ephemeral" || reply["text"] != "Got it: triaging printer on fire" {
		t.Fatalf("%d %v", resp.StatusCode, reply)
	}

	// The run posts to the channel, then replies in the thread.
	next := func() url.Values {
		t.Helper()
		select {
		case p := <-posts:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("no post to Slack: %s", out.String())
			return nil
		}
	}
	first := next()
	if first.Get("channel") != "C2147483705" || first.Get("text") != "<@U2147483697> asked to triage: printer on fire" {
		t.Fatalf("first post %v", first)
	}
	second := next()
	if second.Get("thread_ts") != "1700000000.000101" || !strings.Contains(second.Get("blocks"), "*Requested by* ada in #support") {
		t.Fatalf("second post %v", second)
	}
	if strings.Contains(out.String(), "xoxb-example") {
		t.Fatalf("the token reached the daemon's log: %s", out.String())
	}
}
