package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
)

// result is what one command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// routines runs the command line in-process, in dir, like a user would.
func routines(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return routinesWith(t, cli.Deps{}, dir, args...)
}

// routinesWith runs the command line with deps, filling in the defaults.
func routinesWith(t *testing.T, deps cli.Deps, dir string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if dir != "" {
		args = append([]string{"--project", dir}, args...)
	}
	deps.Kinds = stepkind.NewRegistry(steps.RunKind{}, steps.RoutineKind{})
	deps.Stdout, deps.Stderr = &stdout, &stderr
	code := cli.Run(context.Background(), deps, args)
	return result{code, stdout.String(), stderr.String()}
}

func writeRoutine(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitValidateRunOnceAndHistory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "hello")
	if r := routines(t, "", "init", dir); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	for _, f := range []string{"routine.yaml", "scripts/greet.sh", ".gitignore", "routine.schema.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("init did not create %s", f)
		}
	}
	if r := routines(t, "", "init", dir); r.code != 2 {
		t.Fatalf("second init: %+v", r)
	}
	if r := routines(t, "", "validate", dir); r.code != 0 || !strings.Contains(r.stdout, "valid") {
		t.Fatalf("validate: %+v", r)
	}
	r := routines(t, "", "run-once", dir)
	if r.code != 0 {
		t.Fatalf("run-once: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(lines[0], "run ") || !strings.Contains(lines[1], "[greet] Good morning") || !strings.Contains(lines[2], "[done] greet said Good morning") {
		t.Fatalf("run-once output:\n%s", r.stdout)
	}
	runID := strings.Fields(lines[0])[1]

	r = routines(t, dir, "runs", "-o", "json")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs -o json: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"id", "routine", "state", "attempt", "trigger", "queued_at", "started_at", "finished_at", "error"} {
		if _, ok := runs[0][k]; !ok {
			t.Errorf("runs -o json lacks %q", k)
		}
	}
	if runs[0]["id"] != runID || runs[0]["state"] != "succeeded" || runs[0]["routine"] != "hello" {
		t.Fatalf("run %v", runs[0])
	}

	r = routines(t, dir, "show", runID[:10], "-o", "json")
	var detail struct {
		ID    string           `json:"id"`
		Steps []map[string]any `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &detail); err != nil || detail.ID != runID || len(detail.Steps) != 2 {
		t.Fatalf("show -o json: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"id", "state", "attempts", "exit_code", "started_at", "finished_at", "duration_ms", "outputs", "cpu_ms", "max_rss_kb", "error"} {
		if _, ok := detail.Steps[0][k]; !ok {
			t.Errorf("show -o json step lacks %q", k)
		}
	}
	if out := detail.Steps[0]["outputs"].(map[string]any); !strings.HasPrefix(out["message"].(string), "Good morning") {
		t.Fatalf("outputs %v", out)
	}
	if r = routines(t, dir, "show", runID); r.code != 0 || !strings.Contains(r.stdout, "greet") || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("show: %+v", r)
	}
	r = routines(t, dir, "logs", runID)
	if r.code != 0 || !strings.Contains(r.stdout, runID+" greet stdout Good morning") {
		t.Fatalf("logs: %+v", r)
	}
	if r = routines(t, dir, "runs", "--state", "failed"); r.code != 0 || !strings.Contains(r.stdout, "no runs") {
		t.Fatalf("runs --state failed: %+v", r)
	}
}

func TestInvalidRoutineRunsNothing(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: bad\nstpes:\n  - id: a\n    run: echo hi\n")
	r := routines(t, "", "validate", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "routine.yaml:2:1") || !strings.Contains(r.stderr, `did you mean "steps"`) {
		t.Fatalf("validate: %+v", r)
	}
	r = routines(t, "", "run-once", dir)
	if r.code != 2 || r.stdout != "" {
		t.Fatalf("run-once: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, ".routines")); !os.IsNotExist(err) {
		t.Fatalf("an invalid routine left .routines behind: %v", err)
	}
	r = routines(t, "", "validate", dir, "-o", "json")
	var out struct {
		Valid    bool             `json:"valid"`
		Problems []map[string]any `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Valid || len(out.Problems) == 0 || r.code != 2 {
		t.Fatalf("validate -o json: %v %+v", err, r)
	}
}

func TestFailedRunDeadLetterAndReplay(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: flaky
dead_letter: true
steps:
  - id: check
    run: test "{{ input.mode }}" = ok || { echo "mode is {{ input.mode }}" >&2; exit 4; }
`)
	r := routines(t, "", "run-once", dir, "--input", "mode=broken")
	if r.code != 1 || !strings.Contains(r.stdout, "dead in") || !strings.Contains(r.stderr, "[check] mode is broken") {
		t.Fatalf("run-once: %+v", r)
	}
	r = routines(t, dir, "dlq", "list", "-o", "json")
	var dead []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &dead); err != nil || len(dead) != 1 {
		t.Fatalf("dlq list: %v %+v", err, r)
	}
	errPayload := dead[0]["error"].(map[string]any)
	if errPayload["code"] != "step_failed" || errPayload["exit_code"].(float64) != 4 || errPayload["stderr_tail"] != "mode is broken" {
		t.Fatalf("error payload %v", errPayload)
	}
	id := dead[0]["id"].(string)
	// The replay uses the same input, so it fails again and is dead too.
	r = routines(t, dir, "dlq", "replay", id)
	if r.code != 1 {
		t.Fatalf("replay: %+v", r)
	}
	r = routines(t, dir, "runs", "-o", "json")
	var runs []map[string]any
	json.Unmarshal([]byte(r.stdout), &runs)
	if len(runs) != 2 || runs[0]["replay_of"] != id || runs[0]["trigger"].(map[string]any)["kind"] != "replay" {
		t.Fatalf("runs after replay %v", runs)
	}
	if r = routines(t, dir, "dlq", "replay", "7ZZZZZZZZZ"); r.code != 2 {
		t.Fatalf("replay of unknown run: %+v", r)
	}
}

func TestInputsDeclared(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: inputs
inputs:
  who: { required: true }
  greeting: { default: Hello }
steps:
  - id: say
    run: echo "{{ input.greeting }}, {{ input.who }}"
`)
	if r := routines(t, "", "run-once", dir); r.code != 2 || !strings.Contains(r.stderr, `input "who" is required`) {
		t.Fatalf("missing required: %+v", r)
	}
	if r := routines(t, "", "run-once", dir, "-i", "who=x", "-i", "whom=y"); r.code != 2 || !strings.Contains(r.stderr, `declares no input "whom"`) {
		t.Fatalf("undeclared: %+v", r)
	}
	if r := routines(t, "", "run-once", dir, "-i", "who=team"); r.code != 0 || !strings.Contains(r.stdout, "[say] Hello, team") {
		t.Fatalf("run: %+v", r)
	}
}

func TestRunOnceJSONAndBadFlags(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: js\nsteps:\n  - id: a\n    run: echo hi\n")
	r := routines(t, "", "run-once", dir, "-o", "json")
	var run map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || r.code != 0 || run["state"] != "succeeded" {
		t.Fatalf("run-once -o json: %v %+v", err, r)
	}
	if !strings.Contains(r.stderr, "[a] hi") {
		t.Fatalf("live output should go to stderr with -o json: %q", r.stderr)
	}
	for _, args := range [][]string{{"run-once", dir, "--bogus"}, {"runs", "--state", "weird"}, {"nosuch"}, {"show"}, {"-o", "yaml", "runs"},
		{"dlq"}, {"dlq", "bogus"}, {"--project", t.TempDir(), "show", "01ABCDEF"}} {
		if r := routines(t, dir, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	r := routines(t, "", "schema")
	var schema map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &schema); err != nil || r.code != 0 {
		t.Fatalf("schema: %v", err)
	}
	if !strings.Contains(r.stdout, `"steps"`) || !strings.Contains(r.stdout, `"dead_letter"`) {
		t.Fatalf("schema lacks keys")
	}
}

func TestWithoutLandlockRefusesUnlessAllowed(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: nolandlock\nsteps:\n  - id: a\n    run: echo ran\n")
	noLandlock := cli.Deps{SandboxCheck: func() (int, error) { return 0, errors.New("landlock is not supported by this kernel") }}
	r := routinesWith(t, noLandlock, "", "run-once", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "landlock is not supported") || !strings.Contains(r.stderr, "--allow-unconfined") || strings.Contains(r.stdout, "ran") {
		t.Fatalf("without --allow-unconfined: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, ".routines")); !os.IsNotExist(err) {
		t.Fatalf("a refused run left .routines behind: %v", err)
	}
	r = routinesWith(t, noLandlock, "", "run-once", dir, "--allow-unconfined")
	if r.code != 0 || !strings.Contains(r.stderr, "NOT confined") || !strings.Contains(r.stdout, "[a] ran") {
		t.Fatalf("with --allow-unconfined: %+v", r)
	}
}

func TestMegabytesOfBinaryOutput(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: noisy
steps:
  - id: spew
    run: head -c 3000000 /dev/urandom; printf '\e[2J\e]0;title\a'; echo; echo done
`)
	r := routines(t, "", "run-once", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "[spew] done") {
		t.Fatalf("run-once: exit %d, stderr %s", r.code, r.stderr)
	}
	for _, c := range r.stdout {
		if c == 0x1b || c == 0x07 || c == 0 {
			t.Fatalf("control character %q reached the terminal", c)
		}
	}
	logs := routines(t, dir, "logs", strings.Fields(r.stdout)[1], "-o", "json")
	var lines []map[string]any
	if err := json.Unmarshal([]byte(logs.stdout), &lines); err != nil || len(lines) < 10 {
		t.Fatalf("logs: %v (%d lines)", err, len(lines))
	}
	if last := lines[len(lines)-1]; last["text"] != "done" {
		t.Fatalf("last line %v", last)
	}
}

// TestSchemaFileInDocsIsCurrent keeps docs/routine.schema.json, which the
// examples point editors at, equal to what routines schema prints.
func TestSchemaFileInDocsIsCurrent(t *testing.T) {
	t.Parallel()
	want := routines(t, "", "schema").stdout
	got, err := os.ReadFile("../../docs/routine.schema.json")
	if err != nil || string(got) != want {
		t.Fatalf("docs/routine.schema.json is stale (%v): regenerate it with: go run ./cmd/routines schema > docs/routine.schema.json", err)
	}
}

func TestPermissionsFromTheRoutineFile(t *testing.T) {
	t.Parallel()
	granted, denied := t.TempDir(), t.TempDir()
	dir := writeRoutine(t, `name: perms
permissions:
  write: [`+granted+`]
  network: false
steps:
  - id: granted
    run: echo ok > `+granted+`/out.txt
  - id: inside
    run: echo ok > inside.txt
  - id: denied
    run: echo no > `+denied+`/out.txt
`)
	r := routines(t, "", "run-once", dir)
	refused := strings.Contains(r.stderr, "Permission denied") || strings.Contains(r.stderr, "No such file or directory")
	if r.code != 1 || !strings.Contains(r.stderr, "[denied]") || !refused {
		t.Fatalf("run-once: %+v", r)
	}
	for _, f := range []string{filepath.Join(granted, "out.txt"), filepath.Join(dir, "inside.txt")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("allowed write missing: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(denied, "out.txt")); !os.IsNotExist(err) {
		t.Fatalf("a step wrote outside its permissions: %v", err)
	}
}

func TestInitDotAndValidateJSONOfAMissingRoutine(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dotted")
	os.Mkdir(dir, 0o755)
	r := routinesWith(t, cli.Deps{}, "", "init", dir+"/.")
	if r.code != 0 {
		t.Fatalf("init DIR/.: %+v", r)
	}
	if r := routines(t, "", "validate", dir); r.code != 0 || !strings.Contains(r.stdout, "routine dotted") {
		t.Fatalf("validate: %+v", r)
	}
	r = routines(t, dir, "validate", "-o", "json", "nope")
	var out struct {
		Valid    bool             `json:"valid"`
		Problems []map[string]any `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 2 || out.Valid || len(out.Problems) != 1 {
		t.Fatalf("validate -o json nope: %v %+v", err, r)
	}
}

func TestRunByNameRecordsInTheCurrentProject(t *testing.T) {
	t.Parallel()
	project := t.TempDir()
	os.MkdirAll(filepath.Join(project, "sub"), 0o755)
	os.WriteFile(filepath.Join(project, "sub", "routine.yaml"), []byte("name: byname\nsteps:\n  - id: a\n    run: echo hi\n"), 0o644)
	if r := routines(t, project, "run-once", "byname"); r.code != 0 {
		t.Fatalf("run-once byname: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(project, ".routines", "state.db")); err != nil {
		t.Fatalf("the run was not recorded in the project: %v", err)
	}
	r := routines(t, project, "runs", "-o", "json")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %+v", err, r)
	}
	if _, ok := runs[0]["input"].(map[string]any); !ok {
		t.Fatalf("input is %v, want an object", runs[0]["input"])
	}
	if _, ok := runs[0]["tags"].([]any); !ok {
		t.Fatalf("tags is %v, want an array", runs[0]["tags"])
	}
}
