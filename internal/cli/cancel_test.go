package cli_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/routine"
)

// sleeper is a routine whose first step sleeps 100 minutes in a process
// whose command line holds token, says when it starts, and says when
// SIGTERM ends it; its second step never starts. With the input quick=1
// it ends at once instead.
func sleeper(token string) string {
	return fmt.Sprintf(`name: sleeper
inputs:
  quick: { default: "0" }
steps:
  - id: sleep
    env: { QUICK: "{{ input.quick }}" }
    run: |
      if [ "$QUICK" = 1 ]; then echo quick; exit 0; fi
      trap 'echo "killed by TERM"; exit 143' TERM
      echo started
      sleep 6000.%s & wait
  - id: after
    if: input.quick == "0"
    run: echo never
`, token)
}

// sleepToken is a number of its own for a sleeper, which sleep takes as
// the fraction of its seconds.
func sleepToken() string { return fmt.Sprint(rand.Uint64()) }

// processesOf lists the processes of the machine whose command line holds
// token: a step's, whatever PID namespace it runs in.
func processesOf(t *testing.T, token string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(token)) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// cancelSleeper queues a run of sleeper, waits until its step runs, then
// cancels it with `routines cancel` (run runs the command line) and checks
// that the step was killed, no process of it is left and the run ended
// cancelled through the API, its second step never started. It returns
// the run's id.
func cancelSleeper(t *testing.T, token string, c *client.Client, run func(args ...string) (int, string, string)) string {
	t.Helper()
	code, out, errOut := run("invoke", "sleeper")
	m := queuedRun.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("invoke: exit %d\n%s%s", code, out, errOut)
	}
	id := m[1]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lines, err := c.GetLogs(t.Context(), id, "sleep")
		if err == nil && len(lines) > 0 && len(processesOf(t, token)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step did not start: %v %v", lines, err)
		}
	}
	start := time.Now()
	code, out, errOut = run("cancel", id)
	took := time.Since(start)
	if code != 0 || out != fmt.Sprintf("run %s cancelled · sleeper\n", id) {
		t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("cancelled a running step in %s", took.Round(time.Millisecond))
	// The step is killed at once: well within its 2 s grace to SIGKILL.
	if took > 5*time.Second {
		t.Errorf("cancel took %s", took)
	}
	if left := processesOf(t, token); len(left) > 0 {
		t.Errorf("processes of the step outlived the cancel: %q", left)
	}
	detail, err := c.GetRun(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if detail.State != routine.StateCancelled || detail.Error == nil || detail.Error.Code != routine.CodeCancelled ||
		detail.Error.Message != "cancelled through the API" || len(detail.Steps) != 2 ||
		detail.Steps[0].State != routine.StateCancelled || detail.Steps[1].State != routine.StateCancelled || detail.Steps[1].StartedAt != nil {
		t.Fatalf("run after the cancel: %+v, error %+v, steps %+v", detail.Run, detail.Error, detail.Steps)
	}
	lines, err := c.GetLogs(t.Context(), id, "sleep")
	if err != nil || !strings.Contains(fmt.Sprint(lines), "killed by TERM") {
		t.Errorf("the step's lines do not say it was killed: %v %v", lines, err)
	}
	// Cancelling it again answers it as it is.
	if code, out, errOut := run("cancel", id); code != 0 || !strings.Contains(out, "cancelled") {
		t.Errorf("cancel again: exit %d\n%s%s", code, out, errOut)
	}
	return id
}

// `routines cancel` of a running run of `routines serve` kills its step at
// once, and `routines rerun` runs it again.
func TestServeCancelRunningRunAndRerun(t *testing.T) {
	t.Parallel()
	token := sleepToken()
	dir := writeRoutine(t, sleeper(token))
	d := startServe(t, dir)
	c := client.New(d.url, "")
	run := func(args ...string) (int, string, string) {
		r := routines(t, dir, args...)
		return r.code, r.stdout, r.stderr
	}
	id := cancelSleeper(t, token, c, run)

	r := routines(t, dir, "rerun", id)
	m := queuedRun.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || !strings.HasSuffix(r.stdout, " queued · sleeper\n") {
		t.Fatalf("rerun: %+v", r)
	}
	again, err := c.GetRun(t.Context(), m[1])
	if err != nil || again.ReplayOf != id || again.Trigger.Kind != routine.TriggerRerun {
		t.Fatalf("the re-run: %+v %v", again, err)
	}
	// A run that has not ended cannot be re-run.
	if r := routines(t, dir, "rerun", m[1]); r.code != 2 || !strings.Contains(r.stderr, "only a run that ended can be re-run") {
		t.Fatalf("rerun of a run not ended: %+v", r)
	}
	// Cancelled without waiting: requested (or done already), and ended
	// cancelled soon after.
	if r := routines(t, dir, "cancel", m[1], "--wait", "0"); r.code != 0 {
		t.Fatalf("cancel --wait 0: %+v", r)
	}
	if r := routines(t, dir, "logs", "-f", m[1]); r.code != cli.ExitCancelled {
		t.Fatalf("logs -f of the cancelled re-run: %+v", r)
	}
	// A run that succeeded cannot be cancelled, and re-runs as it ran.
	r = routines(t, dir, "invoke", "sleeper", "-i", "quick=1", "--wait")
	m = queuedRun.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("invoke quick: %+v", r)
	}
	if r := routines(t, dir, "cancel", m[1]); r.code != 2 || !strings.Contains(r.stderr, "already ended succeeded") {
		t.Fatalf("cancel of a run that succeeded: %+v", r)
	}
	if r := routines(t, dir, "rerun", m[1], "--wait"); r.code != 0 || !strings.Contains(r.stdout, "[sleep] quick\n") {
		t.Fatalf("rerun --wait: %+v", r)
	}
}

// On a deployment on PostgreSQL, `routines cancel` through the server
// kills the step on the worker that runs it, at once: the worker hears of
// it from the database's notification, not at its next heartbeat.
func TestRemoteCancelRunningRun(t *testing.T) {
	t.Parallel()
	d := startDeployment(t, pgtest.StartServer(t).Database(t))
	d.env["XDG_CONFIG_HOME"] = t.TempDir()
	if code, out, errOut := d.routines(t, "login", d.env["ROUTINES_SERVER"]); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	d.env["ROUTINES_PROFILE"] = "default"
	token := sleepToken()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "sleeper", "routine.yaml"), sleeper(token))
	if code, out, errOut := d.routines(t, "push", src); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	c := client.New(d.env["ROUTINES_SERVER"], d.env["ROUTINES_TOKEN"])
	run := func(args ...string) (int, string, string) { return d.routines(t, args...) }
	id := cancelSleeper(t, token, c, run)
	if !strings.Contains(d.worker.Out.String(), "cancel of a run requested: stopping it") || !strings.Contains(d.worker.Out.String(), id) {
		t.Errorf("the worker's log does not tell of the cancel:\n%s", d.worker.Out.String())
	}
}
