// Package untrustedcsv is the example of docs/sandbox.md: hostile input
// summed by a step with no network and bounded resources.
package untrustedcsv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestHostileCSVIsData(t *testing.T) {
	dir := clitest.CopyProject(t, ".")
	marker := filepath.Join(dir, "pwned")
	csv := "ada,12\nbob,30\n$(touch " + marker + "),1\n`touch " + marker + "`,2\n\"; touch " + marker + "; echo \",3\n"
	code, stdout, stderr := clitest.RunCLI(t, "run-once", dir, "--input", "csv="+csv)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "[report] 5 rows, total 48") {
		t.Fatalf("output:\n%s", stdout)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a value of the CSV ran as code: %v", err)
	}
	// The step's CPU time and peak memory are its own, from its cgroup.
	code, stdout, _ = clitest.RunCLI(t, "--project", dir, "runs", "-o", "json")
	var runs []struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &runs) != nil || len(runs) != 1 {
		t.Fatalf("runs: %d %s", code, stdout)
	}
	code, stdout, _ = clitest.RunCLI(t, "--project", dir, "show", runs[0].ID, "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"max_rss_kb"`) {
		t.Fatalf("show: %d %s", code, stdout)
	}
}
