package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeProject writes routine files (directory → routine.yaml) under one
// project directory.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for dir, yaml := range files {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A routine step runs the other routine as a sub-run: its outputs come
// back, and each run's trace links to the other.
func TestRoutineStepCallsAnotherRoutine(t *testing.T) {
	t.Parallel()
	root := writeProject(t, map[string]string{
		"caller": `name: caller
steps:
  - id: lookup
    routine: { name: lookup-customer, input: { email: ada@example.com } }
  - id: use
    run: echo "customer {{ steps.lookup.outputs.customer_id }} via run {{ steps.lookup.outputs.run_id }}"
`,
		"lookup": `name: lookup-customer
inputs:
  email: { required: true }
steps:
  - id: find
    run: echo "customer_id=c-$(printf %s '{{ input.email }}' | cut -d@ -f1)" >> "$ROUTINES_OUTPUT"
`,
	})
	r := routines(t, root, "run-once", filepath.Join(root, "caller"), "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	var caller struct {
		ID    string `json:"id"`
		Steps []struct {
			ID      string            `json:"id"`
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &caller); err != nil {
		t.Fatal(err)
	}
	sub := caller.Steps[0].Outputs
	if sub["customer_id"] != "c-ada" || sub["state"] != "succeeded" || sub["run_id"] == "" {
		t.Fatalf("outputs of the routine step: %v", sub)
	}
	if !strings.Contains(r.stderr, "[use] customer c-ada via run "+sub["run_id"]) {
		t.Errorf("live output: %s", r.stderr)
	}
	// The sub-run has its own record, linked back to the caller.
	show := routines(t, root, "show", sub["run_id"], "-o", "json")
	var run struct {
		Routine string `json:"routine"`
		State   string `json:"state"`
		Trigger struct {
			Kind    string            `json:"kind"`
			Payload map[string]string `json:"payload"`
		} `json:"trigger"`
		Input map[string]string `json:"input"`
	}
	if err := json.Unmarshal([]byte(show.stdout), &run); err != nil {
		t.Fatalf("%v: %s", err, show.stdout)
	}
	if run.Routine != "lookup-customer" || run.State != "succeeded" || run.Trigger.Kind != "routine" ||
		run.Trigger.Payload["parent_run_id"] != caller.ID || run.Trigger.Payload["parent_step"] != "lookup" || run.Input["email"] != "ada@example.com" {
		t.Errorf("sub-run: %+v", run)
	}
}

// A sub-run that fails fails the step, with its error; a cycle, a missing
// routine or a missing input is refused before anything runs.
func TestRoutineStepFailuresAndCycles(t *testing.T) {
	t.Parallel()
	root := writeProject(t, map[string]string{
		"caller": "name: caller\nsteps:\n  - id: call\n    routine: { name: broken }\n",
		"broken": "name: broken\nsteps:\n  - id: boom\n    run: echo 'no luck' >&2; exit 3\n",
		"ping":   "name: ping\nsteps:\n  - id: p\n    routine: { name: pong }\n",
		"pong":   "name: pong\nsteps:\n  - id: p\n    routine: { name: ping }\n",
		"lost":   "name: lost\nsteps:\n  - id: p\n    routine: { name: nowhere }\n",
		"needy":  "name: needy\nsteps:\n  - id: p\n    routine: { name: wants-input }\n",
		"wants":  "name: wants-input\ninputs:\n  x: { required: true }\nsteps:\n  - id: p\n    run: touch ran\n",
	})
	r := routines(t, root, "run-once", filepath.Join(root, "caller"), "-o", "json")
	if r.code != 1 || !strings.Contains(r.stdout, "routine broken: run ") || !strings.Contains(r.stdout, "exit status 3") {
		t.Errorf("failing sub-run: exit %d %s", r.code, r.stdout)
	}
	for dir, want := range map[string]string{
		"ping":  "a cycle: ping → pong → ping",
		"lost":  `calls routine "nowhere", which is not in the project`,
		"needy": `input "x" is required by wants-input`,
	} {
		r := routines(t, root, "run-once", filepath.Join(root, dir))
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d %q, want exit 2 and %q", dir, r.code, r.stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "wants", "ran")); err == nil {
		t.Errorf("a step ran")
	}
}
