// Package breachcounter is the example of a state step: a count of
// consecutive readings above a threshold, kept across runs. Its test runs
// it as `routines run-once` would, once per reading.
package breachcounter

import (
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestAlertAfterThreeBreachesInARow(t *testing.T) {
	// A copy, so the checkout gets no .routines/ of its own.
	dir := clitest.CopyProject(t, ".")
	for i, tt := range []struct {
		reading string
		want    string // a line of the run's output
		alert   bool
	}{
		{"95", "[bump] breaches = 1, expires in 10m0s", false},
		{"97", "[bump] breaches = 2, expires in 10m0s", false},
		{"50", "[reset] breaches deleted", false},
		{"95", "[count] breaches is not set", false},
		{"91", "[bump] breaches = 2, expires in 10m0s", false},
		{"99", "[alert] alert - CPU above 90% for 3 readings in a row", true},
		{"96", "[alert] alert - CPU above 90% for 4 readings in a row", true},
	} {
		code, out, stderr := clitest.RunCLI(t, "run-once", dir, "--input", "reading="+tt.reading)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s%s", i+1, code, out, stderr)
		}
		if !strings.Contains(out, tt.want+"\n") {
			t.Fatalf("run %d (reading %s): output lacks %q:\n%s", i+1, tt.reading, tt.want, out)
		}
		if alerted := !strings.Contains(out, "[alert] · skipped"); alerted != tt.alert {
			t.Fatalf("run %d (reading %s): alerted %v, want %v:\n%s", i+1, tt.reading, alerted, tt.alert, out)
		}
	}
}
