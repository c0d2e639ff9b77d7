package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/sandbox"
)

// offLinux are the commands' dependencies on a system without the
// sandbox, as the binary built for macOS has them.
var offLinux = cli.Deps{SandboxSupported: func() error { return sandbox.Unsupported("darwin") }}

// TestOffLinuxRefusesWhatNeedsTheSandbox: where run steps cannot be
// confined, validate, run-once and doctor refuse a routine whose steps
// start processes (run steps, an agent's MCP server started by command,
// a compensate that runs a command), naming them and saying what to do;
// a routine of steps that run inside the engine runs.
func TestOffLinuxRefusesWhatNeedsTheSandbox(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: mixed
steps:
  - id: save
    state: { put: seen, value: "1" }
    compensate: { run: echo undo }
  - id: build
    run: make
  - id: ask
    agent:
      provider: openai
      base_url: http://127.0.0.1:1/v1
      model: m
      prompt: p
      mcp: [{ name: files, command: [mcp-files] }]
  - id: tell
    emit: { event: built }
`)
	want := "error: " + filepath.Join(dir, "routine.yaml") + ": steps save, build, ask: run steps and agent MCP servers started by command need Linux " +
		"(Landlock, namespaces, cgroups), and this binary runs on darwin: run such routines on a Linux host; the step kinds that run " +
		"inside the engine work here (http, sql, llm, agent with url MCP servers, slack, email, state, emit, classify, routine)\n"
	code, stdout, stderr := clitest.RunCLIWith(t, offLinux, "run-once", dir)
	if code != cli.ExitInvalid || stdout != "" || stderr != want {
		t.Errorf("run-once: exit %d\nstdout %q\nstderr %q\nwant   %q", code, stdout, stderr, want)
	}
	// validate checks the file, which may be meant for a Linux host: valid,
	// with a warning that this one cannot run it.
	code, stdout, stderr = clitest.RunCLIWith(t, offLinux, "validate", dir)
	if code != 0 || !strings.Contains(stdout, "valid") || !strings.Contains(stderr, ":1:1: warning: this host cannot run it: steps save, build, ask: run steps") {
		t.Errorf("validate: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".routines")); !os.IsNotExist(err) {
		t.Errorf("a refused run left .routines behind: %v", err)
	}
	code, stdout, _ = clitest.RunCLIWith(t, offLinux, "validate", "-o", "json", dir)
	var v struct {
		Valid    bool
		Warnings []struct{ Message string }
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != 0 || !v.Valid || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0].Message, "steps save, build, ask: run steps") {
		t.Errorf("validate -o json: exit %d, %s (%v)", code, stdout, err)
	}

	// Steps that run inside the engine need no sandbox.
	engine := writeRoutine(t, "name: engine\nsteps:\n  - id: save\n    state: { put: seen, value: \"1\" }\n  - id: read\n    state: { get: seen }\n")
	if code, stdout, stderr := clitest.RunCLIWith(t, offLinux, "validate", engine); code != 0 || !strings.Contains(stdout, "valid") {
		t.Errorf("validate of engine steps: exit %d %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr := clitest.RunCLIWith(t, offLinux, "run-once", "-o", "json", engine); code != 0 || !strings.Contains(stdout, `"succeeded"`) {
		t.Errorf("run-once of engine steps: exit %d %s %s", code, stdout, stderr)
	}

	code, stdout, stderr = clitest.RunCLIWith(t, offLinux, "doctor")
	if want := "no sandbox on this host: " + sandbox.Unsupported("darwin").Error() + "\n"; code != cli.ExitFailed || stdout != want || stderr != "" {
		t.Errorf("doctor: exit %d\nstdout %q\nwant   %q\nstderr %q", code, stdout, want, stderr)
	}
}
