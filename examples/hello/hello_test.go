// Package hello is the example of the README's quick start; its test runs
// it the way the README does.
package hello

import (
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestRunOnce(t *testing.T) {
	// A copy, so the checkout gets no .routines/ of its own.
	dir := clitest.CopyProject(t, ".")
	code, stdout, stderr := clitest.RunCLI(t, "run-once", dir, "--input", "who=readers")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"[greet] Hello, readers!", "[shout] HELLO, READERS!", "[report] greet said 'Hello, readers!' in hello run "} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
}
