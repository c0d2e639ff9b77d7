// Package alerting is the example of docs/observability.md#alerts: a
// routine whose alerts notify Slack and a webhook. Its test serves it
// with Slack's API and the webhook faked on 127.0.0.1, makes its runs
// slow and failing, then fast again, and reads what was said.
package alerting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/alert/alerttest"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
)

func TestAlertsNotify(t *testing.T) {
	slack, hook := alerttest.NewSlack(t, "xoxb-example"), alerttest.NewWebhook(t)
	t.Setenv("SLACK_BOT_TOKEN", slack.Token)
	t.Setenv("ONCALL_WEBHOOK_URL", hook.URL)
	// A copy, so the checkout gets no .routines/ of its own; its alerts
	// post to the fake Slack rather than to slack.com.
	dir := clitest.CopyProject(t, ".")
	file := filepath.Join(dir, "routine.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), `slack: "#ops"`, `slack: "#ops", slack_base_url: "`+slack.URL+`"`))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := clitest.StartServe(t, dir, "--alert-interval", "100ms")
	invoke := func(want int, inputs ...string) {
		t.Helper()
		args := []string{"--project", dir, "invoke", "nightly-export", "--wait", "--server", "http://" + d.Addr}
		for _, in := range inputs {
			args = append(args, "-i", in)
		}
		if code, out, errOut := clitest.RunCLI(t, args...); code != want {
			t.Fatalf("invoke %v = %d, want %d: %s %s", inputs, code, want, out, errOut)
		}
	}

	invoke(0, "seconds=2.1") // p95 above 2s
	if text := slack.Wait(t, 1)[0].Get("text"); !strings.Contains(text, "nightly-export: alert slow export (p95_latency &gt; 2s) is firing") {
		t.Fatalf("Slack heard %q", text)
	}
	invoke(1, "fail=1") // 1 run of 2 failed
	posts, pages := slack.Wait(t, 2), hook.Wait(t, 1)
	// Slack's mrkdwn takes > as &gt;.
	if text := posts[1].Get("text"); !strings.Contains(text, "alert error_rate &gt; 5% is firing: error_rate 50%") {
		t.Fatalf("Slack heard %q", text)
	}
	if p := pages[0]; p.Alert != "error_rate > 5%" || p.State != routine.AlertFiring || p.Value != 0.5 {
		t.Fatalf("the webhook got %+v", p)
	}
	// Twenty fast runs: the slow one is outside the 95th percentile, and
	// 1 failure in 22 runs is under 5%.
	for range 20 {
		invoke(0)
	}
	posts, pages = slack.Wait(t, 4), hook.Wait(t, 2)
	cleared := 0
	for _, p := range posts[2:] {
		if strings.Contains(p.Get("text"), "cleared after") {
			cleared++
		}
	}
	if cleared != 2 || pages[1].State != routine.AlertOK {
		t.Fatalf("after fast runs: Slack heard %v; the webhook got %+v", posts[2:], pages[1])
	}
	code, out, _ := clitest.RunCLI(t, "--project", dir, "alerts")
	if code != 0 || strings.Count(out, "cleared") != 2 || strings.Count(out, "firing") != 2 {
		t.Fatalf("routines alerts = %d:\n%s", code, out)
	}
}
