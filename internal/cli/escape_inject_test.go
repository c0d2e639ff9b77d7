package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

// escapeToken is the secret TestEscapeSecretOnCommandLine looks for; the
// scanner's pattern matches it without containing it ("valu[e]").
const escapeToken = "tok-5ec2e7-value"

// TestEscapeSecretOnCommandLine runs a step that uses a secret in its run
// line the way docs/secrets.md once advised (<(printf %s '{{TOK}}')) and
// holds it for a while, and meanwhile scans every process's command line,
// from the test and from a step of another routine that declares no
// secrets: the secret must be on none. The inputs layer stops it: the line
// refers to $ROUTINES_T1 instead of holding the value.
func TestEscapeSecretOnCommandLine(t *testing.T) {
	t.Setenv("ESCAPE_TOK", escapeToken)
	dir := writeProject(t, map[string]string{"holder": `name: holder
secrets: [ESCAPE_TOK]
steps:
  - id: hold
    run: |
      cat <(printf %s '{{ESCAPE_TOK}}') > /dev/null
      test -n "{{ESCAPE_TOK}}" && touch started && sleep 2
      echo held
`,
		"scanner": `name: scanner
steps:
  - id: scan
    run: |
      seen=0 found=0
      for f in /proc/[0-9]*/cmdline; do
        line=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
        seen=$((seen+1))
        if grep -q 'tok-5ec2e7-valu[e]' <<< "$line"; then found=$((found+1)); fi
      done
      echo "seen=$seen" >> "$ROUTINES_OUTPUT"
      echo "found=$found" >> "$ROUTINES_OUTPUT"
`})
	addr, _ := clitest.Serve(t, dir)
	resp, err := http.Post("http://"+addr+"/v1/routines/holder/runs", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	started := filepath.Join(dir, "holder", "started")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder step did not start")
		}
	}
	if pids := cmdlinesWith(t, escapeToken); len(pids) > 0 {
		t.Errorf("the inputs layer (run-line rendering) failed: the secret is on the command line of processes %v", pids)
	}
	resp, err = http.Post("http://"+addr+"/v1/routines/scanner/runs?wait=10s", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var run struct {
		State string `json:"state"`
		Steps []struct {
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&run); err != nil || run.State != "succeeded" || len(run.Steps) != 1 {
		t.Fatalf("scanner: %v %+v", err, run)
	}
	out := run.Steps[0].Outputs
	if out["found"] != "0" {
		t.Errorf("the inputs layer (run-line rendering) failed: a step of another routine read the secret from %s command lines (of %s it saw)", out["found"], out["seen"])
	}
	if _, err := os.Stat(started); err != nil {
		t.Fatal(err)
	}
}

// cmdlinesWith returns the processes whose command line holds s.
func cmdlinesWith(t *testing.T, s string) []string {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte(s)) {
			pids = append(pids, strings.Split(f, "/")[2])
		}
	}
	return pids
}
