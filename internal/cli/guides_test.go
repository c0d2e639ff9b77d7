package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// background is a command running in-process while the test goes on.
type background struct {
	stdout, stderr *clitest.Buffer
	done           chan int
}

// start runs the command line in dir (as --project) without waiting for it.
func start(t *testing.T, dir string, args ...string) *background {
	t.Helper()
	b := &background{stdout: &clitest.Buffer{}, stderr: &clitest.Buffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		deps := cli.Deps{Kinds: stepkind.NewRegistry(steps.RunKind{}), Stdout: b.stdout, Stderr: b.stderr}
		b.done <- cli.Run(ctx, deps, append([]string{"--project", dir}, args...))
	}()
	return b
}

// wait returns the exit code of the command, which must end within 20 s.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.done:
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("the command did not end; stdout:\n%s\nstderr:\n%s", b.stdout, b.stderr)
	}
	return 0
}

// waitFor waits until buf holds text, while the command runs.
func (b *background) waitFor(t *testing.T, buf *clitest.Buffer, text string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(buf.String(), text); time.Sleep(10 * time.Millisecond) {
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("the command ended (%d) before printing %q; stdout:\n%s\nstderr:\n%s", code, text, b.stdout, b.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in 20 s; stdout:\n%s\nstderr:\n%s", text, b.stdout, b.stderr)
		}
	}
}

// gatedRoutine writes a routine whose step prints "first", waits for the
// file gate in the routine's directory (steps may have a /tmp of their
// own), then prints "second" and exits with {{ input.code }}. It returns
// the project and the gate.
func gatedRoutine(t *testing.T, name string) (dir, gate string) {
	t.Helper()
	dir = writeRoutine(t, `name: `+name+`
inputs:
  code: { default: "0" }
steps:
  - id: wait
    run: |
      echo first
      while [ ! -e gate ]; do sleep 0.02; done
      echo second
      exit {{ input.code }}
`)
	return dir, filepath.Join(dir, "gate")
}

// runID reads the run id from a "run ID …" first line.
func runID(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "run" {
		t.Fatalf("no run id in %q", out)
	}
	return f[1]
}

// seedRuns records runs with the given ids, oldest first, each queued
// a minute after the one before and ending in the given state, with one
// log line naming it.
func seedRuns(t *testing.T, dir string, runs map[string]routine.State, order ...string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, ".routines"), 0o755)
	st := openStore(t, dir)
	base := time.Now().Add(-time.Hour)
	for i, id := range order {
		ctx := context.Background()
		if _, err := st.RunCreate(ctx, &store.RunCreateParams{ID: id, Routine: "seeded", State: runs[id], QueuedAt: base.Add(time.Duration(i) * time.Minute),
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}}); err != nil {
			t.Fatal(err)
		}
		if err := st.LogAppend(ctx, []routine.LogLine{{RunID: id, Step: "a", Seq: 1, Time: time.Now(), Stream: routine.StreamStdout, Text: "line of " + id}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunRefsLastMinusNAndPrefixes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedRuns(t, dir, map[string]routine.State{
		"01JAAAAAAA0000000000000001": routine.StateSucceeded,
		"01JAAAAAAA0000000000000002": routine.StateDead,
		"01JAAAAAAB0000000000000003": routine.StateFailed,
	}, "01JAAAAAAA0000000000000001", "01JAAAAAAA0000000000000002", "01JAAAAAAB0000000000000003")
	for ref, want := range map[string]string{
		"last":         "01JAAAAAAB0000000000000003",
		"-1":           "01JAAAAAAB0000000000000003",
		"-2":           "01JAAAAAAA0000000000000002",
		"-3":           "01JAAAAAAA0000000000000001",
		"01jaaaaaab":   "01JAAAAAAB0000000000000003",
		"01JAAAAAAA00": "", // ambiguous
	} {
		r := routines(t, dir, "logs", ref)
		if want == "" {
			if r.code != 2 || !strings.Contains(r.stderr, "01JAAAAAAA0000000000000001, 01JAAAAAAA0000000000000002") {
				t.Errorf("logs %s: want the candidates, exit 2: %+v", ref, r)
			}
			continue
		}
		if r.code != 0 || !strings.Contains(r.stdout, "line of "+want) || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("logs %s: want the line of %s: %+v", ref, want, r)
		}
		if r := routines(t, dir, "show", ref, "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"id": "`+want+`"`) {
			t.Errorf("show %s: want %s: %+v", ref, want, r)
		}
	}
	// The flag parser must not take -2 for flags, wherever it stands.
	if r := routines(t, dir, "logs", "--step", "a", "-2"); r.code != 0 || !strings.Contains(r.stdout, "line of 01JAAAAAAA0000000000000002") {
		t.Errorf("logs --step a -2: %+v", r)
	}
	for args, want := range map[string]string{
		"show -4":   "-4: 3 runs recorded in " + dir,
		"show -0":   "write last or -1 for the newest run",
		"show 7ZZZ": "no run 7ZZZ in " + dir,
		"logs -x":   "unknown shorthand flag: 'x'",
	} {
		if r := routines(t, dir, strings.Fields(args)...); r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: want exit 2 and %q: %+v", args, want, r)
		}
	}
	// dlq replay counts the dead runs only: its last is the dead one.
	r := routines(t, dir, "dlq", "replay", "-2")
	if r.code != 2 || !strings.Contains(r.stderr, "-2: 1 dead run recorded in "+dir) {
		t.Errorf("dlq replay -2: %+v", r)
	}
	r = routines(t, dir, "dlq", "replay", "last")
	if r.code != 2 || !strings.Contains(r.stderr, "seeded") {
		t.Errorf("dlq replay last should look for the routine of the dead run (there is none): %+v", r)
	}
}

func TestLogsFollowsALiveRunFromTheDaemon(t *testing.T) {
	t.Parallel()
	dir, gate := gatedRoutine(t, "gated")
	startServe(t, dir)
	r := routines(t, dir, "invoke", "gated", "-i", "code=3")
	if r.code != 0 {
		t.Fatalf("invoke: %+v", r)
	}
	id := runID(t, r.stdout)
	f := start(t, dir, "logs", "-f", id[:8])
	// The first line shows while the step still waits: it is followed live.
	f.waitFor(t, f.stdout, id+" wait stdout first")
	if strings.Contains(f.stdout.String(), "second") {
		t.Fatal("second printed before the gate opened")
	}
	os.WriteFile(gate, nil, 0o644)
	if code := f.wait(t); code != 1 {
		t.Fatalf("logs -f of a failed run: exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, f.stdout, f.stderr)
	}
	if !strings.Contains(f.stdout.String(), id+" wait stdout second") || !strings.Contains(f.stderr.String(), "run "+id+" failed in") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", f.stdout, f.stderr)
	}
	// Once finished, the run is read from the store, daemon or not: the
	// same lines, one JSON object a line with -o json.
	r = routines(t, dir, "logs", "-f", "last", "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last routine.LogLine
	if r.code != 1 || len(lines) < 2 || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || last.Text != "second" {
		t.Fatalf("logs -f -o json of a finished run: %+v", r)
	}
}

func TestLogsFollowWithoutADaemon(t *testing.T) {
	t.Parallel()
	dir, gate := gatedRoutine(t, "gated")
	// A run-once in another terminal: followed from the store.
	once := start(t, dir, "run-once", dir)
	once.waitFor(t, once.stdout, "[wait] first")
	f := start(t, dir, "logs", "-f", "last")
	f.waitFor(t, f.stdout, "wait stdout first")
	os.WriteFile(gate, nil, 0o644)
	if code := f.wait(t); code != 0 || !strings.Contains(f.stdout.String(), "wait stdout second") || !strings.Contains(f.stderr.String(), "succeeded in") {
		t.Fatalf("logs -f of a run-once's run: exit %d\nstdout:\n%s\nstderr:\n%s", code, f.stdout, f.stderr)
	}
	if code := once.wait(t); code != 0 {
		t.Fatalf("run-once: %d %s", code, once.stderr)
	}
	// A queued run with no daemon to run it: nothing to follow.
	seedRuns(t, dir, map[string]routine.State{"01JZZZZZZZ0000000000000001": routine.StateQueued}, "01JZZZZZZZ0000000000000001")
	r := routines(t, dir, "logs", "-f", "01JZZZZZZZ0000000000000001")
	if r.code != 2 || !strings.Contains(r.stderr, "cannot follow run 01JZZZZZZZ0000000000000001 (queued): no daemon is running for project "+dir) {
		t.Fatalf("logs -f of a queued run without a daemon: %+v", r)
	}
}

// invoke --wait shows a run as run-once does: the same lines, in the same
// order, then the same final lines; only the first line differs.
func TestInvokeWaitPrintsWhatRunOncePrints(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: talk
inputs:
  code: { default: "0" }
steps:
  - id: out
    run: |
      echo "to stdout"
      echo "to stderr" >&2
      echo "again"
  - id: skipped
    if: "false"
    run: echo never
  - id: last
    run: exit {{ input.code }}
`)
	startServe(t, dir)
	ids := regexp.MustCompile(`01[0-9A-Z]{24}`)
	took := regexp.MustCompile(` in [0-9.]+(µs|ms|s)`)
	norm := func(s string) string {
		s = ids.ReplaceAllString(s, "RUN")
		lines := strings.SplitN(took.ReplaceAllString(s, " in TIME"), "\n", 2)
		return lines[len(lines)-1] // the first line is the run's header
	}
	for _, code := range []string{"0", "4"} {
		once := routines(t, dir, "run-once", dir, "-i", "code="+code)
		inv := routines(t, dir, "invoke", "talk", "--wait", "-i", "code="+code)
		if once.code != inv.code || norm(once.stdout) != norm(inv.stdout) || once.stderr != inv.stderr {
			t.Errorf("code=%s: run-once (exit %d):\n%s%s\ninvoke --wait (exit %d):\n%s%s", code, once.code, once.stdout, once.stderr, inv.code, inv.stdout, inv.stderr)
		}
		if !strings.HasPrefix(inv.stdout, "run ") || !strings.Contains(inv.stdout, " queued · talk\n[out] to stdout\n[out] again\n") {
			t.Errorf("invoke --wait:\n%s", inv.stdout)
		}
	}
	inv := routines(t, dir, "invoke", "talk", "--wait", "-i", "code=4")
	if inv.code != 1 || !strings.Contains(inv.stdout, "[last] · failed: ") || !strings.Contains(inv.stdout, "failed in") {
		t.Errorf("a failed run: %+v", inv)
	}
	inv = routines(t, dir, "-o", "json", "invoke", "talk", "--wait")
	var run map[string]any
	if err := json.Unmarshal([]byte(inv.stdout), &run); err != nil || inv.code != 0 || run["state"] != "succeeded" || !strings.Contains(inv.stderr, "[out] to stdout") {
		t.Errorf("-o json: %v %+v", err, inv)
	}
}

func TestDurationsTakeDays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".routines"), 0o755)
	st := openStore(t, dir)
	for i, age := range []time.Duration{10 * 24 * time.Hour, 2 * 24 * time.Hour, time.Hour} {
		if _, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: "01JAAAAAAA000000000000000" + string(rune('1'+i)), Routine: "r",
			State: routine.StateSucceeded, QueuedAt: time.Now().Add(-age), Trigger: routine.TriggerInfo{Kind: "manual"},
			Tags: []string{[]string{"prod", "dev", "dev"}[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	for since, want := range map[string]int{"1d": 1, "7d": 2, "1d12h": 1, "3d": 2, "30d": 3} {
		r := routines(t, dir, "runs", "--since", since, "-o", "json")
		var runs []any
		if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != want {
			t.Errorf("runs --since %s: %d runs, want %d: %v %+v", since, len(runs), want, err, r)
		}
	}
	for args, want := range map[string]int{"--trigger manual": 3, "--trigger cron": 0, "--tag prod": 1,
		"--tag prod --since 1d": 0, "--trigger manual --since 7d": 2} {
		r := routines(t, dir, append([]string{"runs", "-o", "json"}, strings.Fields(args)...)...)
		var runs []any
		if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != want {
			t.Errorf("runs %s: %d runs, want %d: %v %+v", args, len(runs), want, err, r)
		}
	}
	if r := routines(t, dir, "audit", "--since", "7d"); r.code != 0 {
		t.Errorf("audit --since 7d: %+v", r)
	}
	if r := routines(t, dir, "runs", "--since", "1 day"); r.code != 2 || !strings.Contains(r.stderr, "such as 500ms, 30s, 10m, 1h30m, 2d or 1d12h") {
		t.Errorf("runs --since '1 day': %+v", r)
	}
	// --grace 1d2h is read: serve goes on to refuse --workers 0.
	if r := routines(t, dir, "serve", dir, "--grace", "1d2h", "--lease", "2d", "--workers", "0"); r.code != 2 || !strings.Contains(r.stderr, "--workers 0") {
		t.Errorf("serve --grace 1d2h: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "greet", "routine.yaml"), "name: greet\nsteps:\n  - id: a\n    run: echo hi\n")
	writeFile(t, filepath.Join(dir, "grumble", "routine.yaml"), "name: grumble\nsteps:\n  - id: a\n    run: echo hi\n")
	seedRuns(t, dir, map[string]routine.State{
		"01JAAAAAAA0000000000000001": routine.StateDead,
		"01JAAAAAAA0000000000000002": routine.StateSucceeded,
	}, "01JAAAAAAA0000000000000001", "01JAAAAAAA0000000000000002")
	complete := func(args ...string) []string {
		t.Helper()
		r := routines(t, dir, append([]string{"__complete"}, args...)...)
		if r.code != 0 {
			t.Fatalf("__complete %v: %+v", args, r)
		}
		return strings.Split(strings.TrimSpace(r.stdout), "\n")
	}
	for _, tc := range []struct {
		args []string
		want string // the completions, then the directive
	}{
		{[]string{"invoke", "gr"}, "greet\tgreet|grumble\tgrumble|:4"},
		{[]string{"run-once", "gre"}, "greet\tgreet|:0"},
		{[]string{"validate", "x"}, ":0"},
		{[]string{"invoke", "greet", ""}, ":4"},
		{[]string{"show", ""}, "last\tthe newest run|01JAAAAAAA0000000000000002\tseeded succeeded|01JAAAAAAA0000000000000001\tseeded dead|:36"},
		{[]string{"dlq", "replay", ""}, "last\tthe newest dead run|01JAAAAAAA0000000000000001\tseeded dead|:36"},
		{[]string{"logs", "01jaaaaaaa0000000000000001"}, "01JAAAAAAA0000000000000001\tseeded dead|:36"},
		{[]string{"runs", "--state", "fa"}, "failed|:4"},
		{[]string{"runs", "--state", "succeeded,d"}, "succeeded,dead|:4"},
		{[]string{"-o", ""}, "text|json|junit\troutines test only|:4"},
	} {
		got := complete(tc.args...)
		for i, c := range got {
			// The run's time is the test's: keep routine and state.
			if f := strings.Fields(c); len(f) == 5 && strings.HasPrefix(f[0], "01J") {
				got[i] = f[0] + "\t" + f[1] + " " + f[2]
			}
		}
		if j := strings.Join(got[:len(got)-1], "|") + "|" + got[len(got)-1]; strings.TrimPrefix(j, "|") != tc.want {
			t.Errorf("__complete %q:\n got %q\nwant %q", tc.args, j, tc.want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if r := routines(t, "", "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "routines") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := routines(t, "", "--version")
	if r.code != 0 || !regexp.MustCompile(`^routines \S+ .*go1\.\S+ \w+/\w+\n$`).MatchString(r.stdout) {
		t.Fatalf("--version: %+v", r)
	}
	r = routinesWith(t, cli.Deps{Version: "v1.4.0"}, "", "--version")
	if !strings.HasPrefix(r.stdout, "routines v1.4.0 go1.") {
		t.Fatalf("--version built with -X main.version=v1.4.0: %q", r.stdout)
	}
}
