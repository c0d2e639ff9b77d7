package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/alert/alerttest"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
)

// TestServeAlertsFireAndClear runs a routine under `routines serve` until
// its error rate crosses its alert's threshold, then back: Slack (a fake
// of its API) and a webhook hear of the firing once and of the clearing
// once, and both are recorded.
func TestServeAlertsFireAndClear(t *testing.T) {
	t.Parallel()
	const token = "xoxb-serve-alerts"
	slack, hook := alerttest.NewSlack(t, token), alerttest.NewWebhook(t)
	dir := writeRoutine(t, fmt.Sprintf(`name: flaky
secrets: [SLACK_BOT_TOKEN]
inputs:
  fail: { default: "0" }
steps:
  - id: work
    run: test "{{ input.fail }}" = 0
alerts:
  - name: failing
    when: error_rate > 20%%
    over: 10m
    notify: { slack: "#ops", slack_base_url: %q, webhook: %q }
`, slack.URL, hook.URL))
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
		p.URL != "https://routines.example.com/runs?routine=flaky" {
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
