package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/sandbox"
)

// TestResourcesLimitASteps: resources: in routine.yaml reach the step's
// cgroup; a fork bomb ends as pids_limit and a memory hog as oom in the
// run's error payload, and the next run of the daemon-less engine is fine.
func TestResourcesLimitASteps(t *testing.T) {
	t.Parallel()
	var pids, memory bool
	for _, l := range sandbox.Layers() {
		pids = pids || l.Name == sandbox.LayerPids && l.Active
		memory = memory || l.Name == sandbox.LayerMemory && l.Active
	}
	if !pids || !memory {
		t.Skip("no pids or memory controller for steps on this host")
	}
	dir := writeRoutine(t, `name: limited
resources: { pids: 32 }
steps:
  - id: bomb
    run: 'bomb() { bomb | bomb & }; bomb; sleep 1; exit 3'
    timeout: 20s
`)
	r := routines(t, "", "run-once", "-o", "json", dir)
	if r.code != 1 || !strings.Contains(r.stdout, `"code": "pids_limit"`) {
		t.Fatalf("fork bomb under pids: 32: %+v", r)
	}
	dir = writeRoutine(t, `name: hog
steps:
  - id: hog
    resources: { memory: 64Mi }
    run: 'x=$(head -c 300000000 /dev/zero | tr "\0" a); echo ${#x}'
`)
	r = routines(t, "", "run-once", "-o", "json", dir)
	if r.code != 1 || !strings.Contains(r.stdout, `"code": "oom"`) {
		t.Fatalf("300 MB in a 64Mi step: %+v", r)
	}
}

func TestResourcesValidated(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: bad
resources: { memory: 0, pids: 0, cpu: -1 }
steps:
  - id: a
    run: "true"
`)
	r := routines(t, "", "validate", dir)
	for _, want := range []string{"routine.yaml:2:", "resources.memory must be more than 0", "resources.pids must be 1 or more", "resources.cpu must be more than 0"} {
		if r.code != 2 || !strings.Contains(r.stderr+r.stdout, want) {
			t.Fatalf("validate: want %q in %+v", want, r)
		}
	}
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	r := routines(t, "", "doctor", "-o", "json")
	var rep struct{ Layers []sandbox.LayerStatus }
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor -o json: %v: %+v", err, r)
	}
	layers := rep.Layers
	var names []string
	missing := false
	for _, l := range layers {
		names = append(names, l.Name)
		if !l.Active {
			missing = true
			if l.Fix == "" {
				t.Errorf("layer %s is missing and doctor says nothing to do", l.Name)
			}
		}
	}
	if got := strings.Join(names, ","); got != "landlock,network,mount,cgroup,memory,pids,cpu" {
		t.Fatalf("layers %s", got)
	}
	if (r.code == 0) == missing {
		t.Fatalf("exit %d with missing=%v", r.code, missing)
	}
	text := routines(t, "", "doctor")
	if !strings.Contains(text.stdout, "LAYER") || !strings.Contains(text.stdout, "landlock") {
		t.Fatalf("doctor: %+v", text)
	}
	if bad := routines(t, "", "--allow-missing", "landlockk", "doctor"); bad.code != 2 || !strings.Contains(bad.stderr, "write one of network, memory, pids, cpu") {
		t.Fatalf("--allow-missing with a bad name: %+v", bad)
	}
}
