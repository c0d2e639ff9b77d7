// Package retention is the example of docs/operations.md#retention: a
// project whose routines.project.yaml bounds how long runs, logs and
// artifacts are kept. Its test runs the routine, then prunes as if time had
// passed, with the commands a user types.
package retention

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestPruneAsTimePasses(t *testing.T) {
	t.Parallel()
	dir := clitest.CopyProject(t, ".", "retention_test.go", "README.md", "uptime.txt")
	for range 2 {
		if code, out, errOut := clitest.RunCLI(t, "--project", dir, "run-once", dir); code != 0 {
			t.Fatalf("run-once: exit %d\n%s%s", code, out, errOut)
		}
	}
	prune := func(after time.Duration, args ...string) map[string]any {
		t.Helper()
		deps := cli.Deps{Now: func() time.Time { return time.Now().Add(after) }}
		code, out, errOut := clitest.RunCLIWith(t, deps, append([]string{"--project", dir, "prune", "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return v
	}
	runsDir := filepath.Join(dir, ".routines", "runs")
	folders := func() int {
		entries, _ := os.ReadDir(runsDir)
		return len(entries)
	}
	if n := folders(); n != 2 {
		t.Fatalf("%d run folders, want the 2 runs' artifacts", n)
	}
	// A day later: the lines (12h) and the artifacts (1d) go, the runs stay.
	v := prune(25 * time.Hour)
	if v["runs"] != 0.0 || v["logs"].(float64) < 2 || v["artifacts"] != 2.0 {
		t.Errorf("a day later: %v; want the lines and the 2 artifacts", v)
	}
	if policy := v["policy"].(map[string]any); policy["logs"].(map[string]any)["max_age"] != "12h" {
		t.Errorf("policy %v: not the project's", policy)
	}
	if n := folders(); n != 0 {
		t.Errorf("%d run folders left", n)
	}
	code, out, _ := clitest.RunCLI(t, "--project", dir, "runs", "-o", "json")
	var runs []any
	if code != 0 || json.Unmarshal([]byte(out), &runs) != nil || len(runs) != 2 {
		t.Errorf("runs after a day: exit %d\n%s", code, out)
	}
	// Three days later: the runs (2d) go too.
	if v := prune(3*24*time.Hour, "--dry-run"); v["runs"] != 2.0 {
		t.Errorf("three days later, dry: %v; want 2 runs", v)
	}
	if v := prune(3 * 24 * time.Hour); v["runs"] != 2.0 {
		t.Errorf("three days later: %v; want 2 runs", v)
	}
	if code, out, _ := clitest.RunCLI(t, "--project", dir, "runs", "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &runs) != nil || len(runs) != 0 {
		t.Errorf("runs after three days: exit %d\n%s", code, out)
	}
}
