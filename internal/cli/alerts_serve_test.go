package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/alert/alerttest"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/routine"
)

// flaky is a routine that fails when its input fail is 1, with one alert
// (its when: and more, as alert gives them) over 10m, which notifies slack
// and hook.
func flaky(alert string, slack *alerttest.Slack, hook *alerttest.Webhook) string {
	return fmt.Sprintf(`name: flaky
secrets: [SLACK_BOT_TOKEN]
inputs:
  fail: { default: "0" }
steps:
  - id: work
    run: test "{{ input.fail }}" = 0
alerts:
  - %s
    over: 10m
    notify: { slack: "#ops", slack_base_url: %q, webhook: %q }
`, alert, slack.URL, hook.URL)
}

// TestServeAlertsFireAndClear runs a routine under `routines serve` until
// its error rate crosses its alert's threshold, then back: Slack (a fake
// of its API) and a webhook hear of the firing once and of the clearing
// once, and both are recorded.
func TestServeAlertsFireAndClear(t *testing.T) {
	t.Parallel()
	const token = "xoxb-serve-alerts"
	slack, hook := alerttest.NewSlack(t, token), alerttest.NewWebhook(t)
	dir := writeRoutine(t, flaky("name: failing\n    when: error_rate > 20%", slack, hook))
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"SLACK_BOT_TOKEN": token})}
	d := clitest.StartServeWith(t, deps, dir, "--alert-interval", "50ms", "--public-url", "https://routines.example.com")
	invoke := func(fail string) {
		t.Helper()
		code, out, errOut := clitest.RunCLIWith(t, deps, "--project", dir, "invoke", "flaky", "-i", "fail="+fail, "--wait", "--server", "http://"+d.Addr)
		if want := map[string]int{"0": 0, "1": 1}[fail]; code != want {
			t.Fatalf("invoke fail=%s = %d, want %d: %s %s", fail, code, want, out, errOut)
		}
	}
	invoke("1") // 1 of 1 failed: 100% > 20%
	posts, payloads := slack.Wait(t, 1), hook.Wait(t, 1)
	if p := payloads[0]; p.Routine != "flaky" || p.Alert != "failing" || p.State != routine.AlertFiring || p.Value != 1 || p.Runs != 1 ||
		p.URL != "https://routines.example.com/ui/runs?routine=flaky" {
		t.Errorf("webhook payload of the firing = %+v", p)
	}
	if text := posts[0].Get("text"); posts[0].Get("channel") != "#ops" || !strings.Contains(text, "flaky: alert failing (error_rate &gt; 20%) is firing: error_rate 100% over the last 10m (1 run)") {
		t.Errorf("Slack post of the firing = %v", posts[0])
	}
	for range 4 {
		invoke("0") // 1 of 5 failed: 20%, not more
	}
	posts, payloads = slack.Wait(t, 2), hook.Wait(t, 2)
	if p := payloads[1]; p.State != routine.AlertOK || p.Value != 0.2 || p.Runs != 5 || !p.StartedAt.Equal(payloads[0].At) {
		t.Errorf("webhook payload of the clearing = %+v", p)
	}
	if text := posts[1].Get("text"); !strings.Contains(text, "flaky: alert failing (error_rate &gt; 20%) cleared after") {
		t.Errorf("Slack post of the clearing = %q", text)
	}
	// Many evaluations later, nothing more was said.
	time.Sleep(20 * 50 * time.Millisecond)
	if len(slack.Posts()) != 2 || len(hook.Payloads()) != 2 {
		t.Errorf("%d Slack posts and %d webhook calls, want 2 each", len(slack.Posts()), len(hook.Payloads()))
	}
	code, out, errOut := clitest.RunCLIWith(t, deps, "--project", dir, "alerts", "-o", "json")
	var list []*routine.AlertRecord
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("alerts -o json = %d %q %s: %v", code, out, errOut, err)
	}
	if len(list) != 2 || list[0].State != routine.AlertOK || list[1].State != routine.AlertFiring || !list[0].Done || !list[1].Done {
		t.Fatalf("alerts -o json = %s; want the clearing and the firing, delivered", out)
	}
	resp, err := http.Get("http://" + d.Addr + "/v1/alerts?routine=flaky&since=1h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api []*routine.AlertRecord
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil || resp.StatusCode != http.StatusOK || len(api) != 2 || api[1].ID != list[1].ID {
		t.Errorf("GET /v1/alerts = %d %d records %v", resp.StatusCode, len(api), err)
	}
}

// TestServersAlertOnce runs two servers and a worker on one PostgreSQL,
// both servers evaluating the alerts of a pushed routine every 50 ms:
// each firing and clearing is notified once, by one of them.
func TestServersAlertOnce(t *testing.T) {
	t.Parallel()
	const token = "xoxb-servers-alerts"
	slack, hook := alerttest.NewSlack(t, token), alerttest.NewWebhook(t)
	db := pgtest.StartServer(t).Database(t)
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"SLACK_BOT_TOKEN": token})}
	var servers []*clitest.Daemon
	for range 2 {
		servers = append(servers, clitest.StartRemoteWith(t, deps, "server", append(deploymentArgs(t, db),
			"--addr", "127.0.0.1:0", "--token", "s3cret-token", "--alert-interval", "50ms")...))
	}
	clitest.StartRemoteWith(t, deps, "worker", append(deploymentArgs(t, db), "--slots", "2")...)
	env := map[string]string{"SLACK_BOT_TOKEN": token, "ROUTINES_SERVER": "http://" + servers[0].Addr, "ROUTINES_TOKEN": "s3cret-token"}
	run := func(args ...string) (int, string, string) {
		return clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, env)}, args...)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "flaky", "routine.yaml"), flaky("when: failures > 0", slack, hook))
	if code, out, errOut := run("push", src); code != 0 {
		t.Fatalf("push = %d %s %s", code, out, errOut)
	}
	if code, out, errOut := run("invoke", "flaky", "-i", "fail=1", "--wait", "--server", env["ROUTINES_SERVER"]); code != 1 {
		t.Fatalf("invoke fail=1 = %d, want 1: %s %s", code, out, errOut)
	}
	if p := hook.Wait(t, 1)[0]; p.State != routine.AlertFiring || p.Value != 1 {
		t.Fatalf("webhook payload = %+v", p)
	}
	slack.Wait(t, 1)
	// Many evaluations of both servers later, nothing more was said.
	time.Sleep(20 * 50 * time.Millisecond)
	if len(slack.Posts()) != 1 || len(hook.Payloads()) != 1 {
		t.Fatalf("two servers sent %d Slack posts and %d webhook calls of one firing, want 1 each", len(slack.Posts()), len(hook.Payloads()))
	}
	logs := servers[0].Out.String() + servers[1].Out.String()
	if n := strings.Count(logs, "alert is firing"); n != 1 {
		t.Errorf("the servers logged the firing %d times, want once:\n%s", n, logs)
	}
	// The other server lists the record, delivered.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+servers[1].Addr+"/v1/alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer s3cret-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []*routine.AlertRecord
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 1 || !list[0].Done || list[0].Attempts != 1 {
		t.Fatalf("GET /v1/alerts of the other server = %d records %+v, %v", len(list), list, err)
	}
}
