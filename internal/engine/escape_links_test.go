package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// The escape tests of the engine's own file handling: real routines whose
// real run steps (bash, in the sandbox) plant links where the engine reads
// outputs and copies artifacts. The layer under test is the engine's
// (internal/workspace): the sandbox lets a step create a link to anything,
// since a link is only a name.

const outsideSecret = "OUTSIDE-SECRET the engine must never hand over"

// linkBundle is a project with a routine in a subdirectory, its store, an
// engine with the real run kind, and an outside folder no step is granted.
type linkBundle struct {
	e       *engine.Engine
	store   *sqlite.Store
	dir     string // the routine directory
	outside string // holds secret, a file the steps aim at
}

func linkSetup(t *testing.T) *linkBundle {
	t.Helper()
	return linkSetupIn(t, "routine")
}

// linkSetupIn is linkSetup with the routine in sub, a folder of the
// project ("." for the project root).
func linkSetupIn(t *testing.T, sub string) *linkBundle {
	t.Helper()
	project, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(project, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte(outsideSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(project, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := engine.New(engine.Config{
		Store:    st,
		Kinds:    stepkind.NewRegistry(steps.RunKind{}),
		StateDir: filepath.Join(project, ".routines"),
	})
	return &linkBundle{e: e, store: st, dir: dir, outside: outside}
}

// run runs the routine of yaml (with OUTSIDE in its env) and returns the
// run, its step records and everything the run left for anyone to see:
// the run and step records, the log lines and the kept artifacts. It fails
// the test when the engine hangs.
func (b *linkBundle) run(t *testing.T, yaml string) (*routine.Run, map[string]*routine.StepRun, string) {
	t.Helper()
	yaml = strings.Replace(yaml, "\nsteps:", "\nenv:\n  OUTSIDE: "+b.outside+"\nsteps:", 1)
	r, err := spec.Parse("routine.yaml", []byte(yaml), b.dir)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	ctx := context.Background()
	run, err := b.store.RunCreate(ctx, &store.RunCreateParams{
		ID: fmt.Sprintf("01ESC%021d", time.Now().UnixNano()), Routine: r.Name, Revision: r.Revision,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		run, err = b.e.Execute(ctx, r, run)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("execute: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("engine layer failed: the engine hung on what the step planted")
	}
	recs, err := b.store.StepList(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := b.store.LogList(ctx, &store.LogListParams{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	byID := map[string]*routine.StepRun{}
	for _, v := range []any{run, recs, logs} {
		json.NewEncoder(&seen).Encode(v)
	}
	for _, rec := range recs {
		byID[rec.ID] = rec
	}
	filepath.WalkDir(filepath.Join(b.e.Workspace(run.ID), "artifacts"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			seen.Write(data)
		}
		return nil
	})
	return run, byID, seen.String()
}

// refused checks that step failed with a message naming why, and that
// secret appears nowhere the run can be seen.
func refused(t *testing.T, rec *routine.StepRun, seen, want, secret string) {
	t.Helper()
	if strings.Contains(seen, secret) {
		t.Fatalf("engine layer failed: the planted link handed over %q\n%s", secret, seen)
	}
	if rec == nil || rec.State != routine.StateFailed || rec.Error == nil || !strings.Contains(rec.Error.Message, want) {
		t.Fatalf("engine layer: step %+v, want it failed with %q", rec, want)
	}
	if len(rec.Outputs) != 0 {
		t.Fatalf("engine layer: outputs %v of a refused outputs file", rec.Outputs)
	}
}

// outputsRefused runs a routine whose one step plants run in place of its
// $ROUTINES_OUTPUT, and checks that the engine refused it as want says
// and handed over nothing of secret.
func outputsRefused(t *testing.T, b *linkBundle, run, want, secret string) {
	t.Helper()
	_, recs, seen := b.run(t, "name: outputs\nsteps:\n  - id: plant\n    run: "+run+"\n")
	refused(t, recs["plant"], seen, want, secret)
}

func TestEscapeOutputsLinkToEngineEnviron(t *testing.T) {
	t.Parallel()
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skip("no /proc/self/environ")
	}
	// The longest value of the engine's environment that JSON shows as is.
	var value string
	for _, kv := range strings.Split(string(environ), "\x00") {
		_, v, _ := strings.Cut(kv, "=")
		if len(v) > len(value) && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:._-") == "" {
			value = v
		}
	}
	if len(value) < 8 {
		t.Skip("no value of the engine's environment long enough to look for")
	}
	outputsRefused(t, linkSetup(t), `ln -sf /proc/self/environ "$ROUTINES_OUTPUT"`,
		"read $ROUTINES_OUTPUT: a symbolic link (not followed)", value)
}

func TestEscapeOutputsLinkToOutsideFile(t *testing.T) {
	t.Parallel()
	outputsRefused(t, linkSetup(t), `ln -sf "$OUTSIDE/secret" "$ROUTINES_OUTPUT"`,
		"read $ROUTINES_OUTPUT: a symbolic link (not followed)", outsideSecret)
}

// TestEscapeOutputsHardLink: a hard link is a name of the file itself,
// which no link check sees; the link count does. The sandbox refuses to
// link a file from outside the grants (Landlock's refer right), and across
// grants (each is a mount of its own in the run's mount namespace: EXDEV),
// so the attack on a granted file fails in the step or in the engine; a
// second name made inside the workspace shows the engine refuses a link by
// its count alone.
func TestEscapeOutputsHardLink(t *testing.T) {
	t.Parallel()
	b := linkSetup(t)
	granted := filepath.Join(filepath.Dir(b.dir), "granted")
	if err := os.Mkdir(granted, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(granted, "victim")
	if err := os.WriteFile(victim, []byte(outsideSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, recs, seen := b.run(t, `name: hardlink
permissions: { write: [`+granted+`] }
steps:
  - id: plant
    run: ln "`+victim+`" "$ROUTINES_OUTPUT"
`)
	if rec := recs["plant"]; strings.Contains(seen, outsideSecret) || rec == nil || rec.State != routine.StateFailed || len(rec.Outputs) != 0 {
		t.Fatalf("a hard link to a granted file handed it over: %+v\n%s (layers: mount namespace, engine)", rec, seen)
	}
	_, recs, seen = b.run(t, `name: hardlink
steps:
  - id: plant
    run: echo "key=`+outsideSecret+`" > "$ROUTINES_WORKSPACE/second" && ln "$ROUTINES_WORKSPACE/second" "$ROUTINES_OUTPUT"
`)
	refused(t, recs["plant"], seen, "read $ROUTINES_OUTPUT: a file with more than one hard link", "key="+outsideSecret)
}

func TestEscapeOutputsFIFOHangsNothing(t *testing.T) {
	t.Parallel()
	outputsRefused(t, linkSetup(t), `mkfifo "$ROUTINES_OUTPUT"`,
		"read $ROUTINES_OUTPUT: not a regular file", outsideSecret)
}

func TestEscapeOutputsTooLarge(t *testing.T) {
	t.Parallel()
	outputsRefused(t, linkSetup(t), `head -c 2000000 /dev/zero | tr '\0' a | sed 's/^/k=/' > "$ROUTINES_OUTPUT"`,
		"read $ROUTINES_OUTPUT: larger than the limit of 1 MiB", outsideSecret)
}

// TestEscapeArtifactLinkToOutsideFile: a listed artifact that is a link is
// not copied, so the next step cannot read the outside file from
// $ROUTINES_ARTIFACTS_IN.
func TestEscapeArtifactLinkToOutsideFile(t *testing.T) {
	t.Parallel()
	b := linkSetup(t)
	_, recs, seen := b.run(t, `name: artifact-link
steps:
  - id: plant
    run: ln -sf "$OUTSIDE/secret" report.txt
    artifacts: [report.txt]
  - id: read
    run: cat "$ROUTINES_ARTIFACTS_IN/plant/report.txt"
`)
	refused(t, recs["plant"], seen, "keep artifact report.txt: a symbolic link (not followed)", outsideSecret)
	if rec := recs["read"]; rec == nil || rec.State != routine.StateCancelled {
		t.Fatalf("the step after a refused artifact ran: %+v", rec)
	}
}

// TestEscapeArtifactsFolderLink: links planted where the engine writes the
// copies of artifacts. The engine must not create or change anything at
// the link's target.
func TestEscapeArtifactsFolderLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"folder inside $ROUTINES_ARTIFACTS", `steps:
  - id: plant
    run: |
      ln -sfn "$OUTSIDE/target" "$ROUTINES_ARTIFACTS/out"
      mkdir -p out && echo PLANTED > out/x.txt
    artifacts: [out/x.txt]
`, "keep artifact out/x.txt: destination: a symbolic link (not followed)"},
		{"a later step's artifacts folder", `steps:
  - id: plant
    run: ln -sfn "$OUTSIDE/target" "$ROUTINES_WORKSPACE/artifacts/write"
    artifacts: []
  - id: write
    run: echo PLANTED > x.txt
    artifacts: [x.txt]
`, "prepare artifacts directory: a symbolic link (not followed)"},
		{"the whole artifacts folder", `steps:
  - id: plant
    run: ln -sfn "$OUTSIDE/target" "$ROUTINES_WORKSPACE/artifacts"
  - id: write
    run: echo PLANTED > x.txt
    artifacts: [x.txt]
`, "prepare artifacts directory: a symbolic link (not followed)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := linkSetup(t)
			target := filepath.Join(b.outside, "target")
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			_, recs, seen := b.run(t, fmt.Sprintf("name: artifacts-dir-%d\n", i)+tt.yaml)
			var failed *routine.StepRun
			for _, rec := range recs {
				if rec.State == routine.StateFailed {
					failed = rec
				}
			}
			entries, err := os.ReadDir(target)
			if err != nil || len(entries) != 0 {
				t.Fatalf("engine layer failed: it wrote through the planted link into %s: %v %v", target, entries, err)
			}
			refused(t, failed, seen, tt.want, outsideSecret)
		})
	}
}

// TestEscapeArtifactFileLinkIsReplaced: a link planted at the very path of
// an artifact's copy is replaced by the copy, and its target is untouched.
func TestEscapeArtifactFileLinkIsReplaced(t *testing.T) {
	t.Parallel()
	b := linkSetup(t)
	run, recs, _ := b.run(t, `name: artifact-file-link
steps:
  - id: plant
    run: |
      ln -sf "$OUTSIDE/secret" "$ROUTINES_ARTIFACTS/x.txt"
      echo mine > x.txt
    artifacts: [x.txt]
`)
	if rec := recs["plant"]; rec == nil || rec.State != routine.StateSucceeded {
		t.Fatalf("step %+v", rec)
	}
	if got, _ := os.ReadFile(filepath.Join(b.outside, "secret")); string(got) != outsideSecret+"\n" {
		t.Fatalf("engine layer failed: the copy was written through the link: %q", got)
	}
	copied := filepath.Join(b.e.Workspace(run.ID), "artifacts", "plant", "x.txt")
	if fi, err := os.Lstat(copied); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the copy: %v %v", fi, err)
	}
}

// TestEscapeArtifactFromProjectState: a routine at the project root lists
// the project's store as its artifact, with no link at all. The engine,
// which can read it, must not copy it out for the step.
func TestEscapeArtifactFromProjectState(t *testing.T) {
	t.Parallel()
	for i, steps := range []string{
		"  - id: take\n    run: \"true\"\n    artifacts: [.routines/state.db]\n",
		"  - id: take\n    run: \"true\"\n    workdir: .routines\n    artifacts: [state.db]\n",
	} {
		b := linkSetupIn(t, ".")
		run, recs, _ := b.run(t, fmt.Sprintf("name: take-%d\nsteps:\n", i)+steps)
		filepath.WalkDir(filepath.Join(b.e.Workspace(run.ID), "artifacts"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Fatalf("engine layer failed: it copied the project's store out as an artifact, to %s", p)
			}
			return nil
		})
		if rec := recs["take"]; rec == nil || rec.Error == nil || !strings.Contains(rec.Error.Message, "inside the project's .routines directory") {
			t.Fatalf("engine layer: step %+v, want it refused", rec)
		}
	}
}
