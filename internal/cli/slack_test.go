package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// One endpoint serves every slash command, so a command picks one routine.
func TestServeDuplicateSlackCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"first", "second"} {
		writeFile(t, filepath.Join(dir, name, "routine.yaml"), "name: "+name+`
secrets: [SLACK_SIGNING_SECRET]
triggers:
  - slack_command: { command: /triage, signing_secret: "{{SLACK_SIGNING_SECRET}}" }
steps:
  - id: s
    run: echo hi
`)
	}
	r := routines(t, "", "serve", dir, "--addr", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "slack command /triage is handled by both first and second") {
		t.Fatalf("duplicate command: %+v", r)
	}
}
