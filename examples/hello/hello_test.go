// Package hello is the example of the README's quick start; its test runs
// it the way the README does.
package hello

import (
	"encoding/json"
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
	for _, want := range []string{
		"[greet] Hello, readers!", "[shout] HELLO, READERS!",
		"[deliver] · attempt 1/3 failed: exit status 1; retrying in 100ms", "[deliver] delivered on attempt 2",
		"[report] greet said 'Hello, readers!' in hello run ",
	} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// An input with a line break is the greeting's, and adds no output.
func TestInputCannotAddOutputs(t *testing.T) {
	dir := clitest.CopyProject(t, ".")
	who := "readers\nforged=an output of the caller's choosing"
	code, stdout, stderr := clitest.RunCLI(t, "run-once", dir, "--input", "who="+who, "-o", "json")
	var run struct {
		Steps []struct {
			ID      string            `json:"id"`
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(stdout), &run); code != 0 || err != nil || len(run.Steps) == 0 {
		t.Fatalf("exit %d %v\n%s%s", code, err, stdout, stderr)
	}
	if got := run.Steps[0].Outputs; run.Steps[0].ID != "greet" || len(got) != 1 || got["message"] != "Hello, "+who+"!" {
		t.Fatalf("greet outputs %v", got)
	}
}
