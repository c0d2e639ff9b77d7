// Package crongreeting is the cron example of docs/triggers.md: a routine
// with a six-field (seconds) cron. Its test starts the daemon and waits for
// the schedule to fire.
package crongreeting

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestCronFires(t *testing.T) {
	// A copy, so the checkout gets no .routines/ or greetings.log of its own.
	dir := clitest.CopyProject(t, ".", "greetings.log")
	addr, out := clitest.Serve(t, dir)

	// */2 seconds: the first tick is at most 2 s away; allow for a slow machine.
	var log []byte
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log, _ = os.ReadFile(filepath.Join(dir, "greetings.log"))
		if bytes.HasSuffix(log, []byte("\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the schedule did not fire:\n%s", out.String())
		}
	}
	line := strings.TrimSpace(strings.SplitN(string(log), "\n", 2)[0])
	prefix, at, ok := strings.Cut(line, "(tick of ")
	if !ok || prefix != "Good morning, world! " {
		t.Fatalf("greeting %q", line)
	}
	at = strings.TrimSuffix(at, ")")
	tick, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		t.Fatalf("scheduled_at %q: %v", at, err)
	}
	if tick.Second()%2 != 0 || tick.Nanosecond() != 0 {
		t.Errorf("tick %s is not on */2 seconds", at)
	}
	if !strings.HasSuffix(at, "+01:00") && !strings.HasSuffix(at, "+02:00") {
		t.Errorf("scheduled_at %s is not in Europe/Berlin time", at)
	}

	// Fired by the API, as the README's `routines invoke` does: no tick.
	code, stdout, stderr := clitest.RunCLI(t, "invoke", "cron-greeting", "--server", "http://"+addr, "--input", "who=ada", "--wait")
	if code != 0 {
		t.Fatalf("invoke: exit %d\n%s%s", code, stdout, stderr)
	}
	if log, _ = os.ReadFile(filepath.Join(dir, "greetings.log")); !strings.Contains(string(log), "Good morning, ada! (tick of none: invoked)\n") {
		t.Fatalf("greetings.log:\n%s", log)
	}
}
