package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
)

// A pushed revision (sealed) is shared by every run of it on a worker:
// each run works in a private, writable copy — its steps write, replace
// and hand on files as in a routine directory of its own — and the
// revision is the same after the runs as before; the copy is gone once
// the run ends.
func TestSealedRevisionRunsInAPrivateCopy(t *testing.T) {
	t.Parallel()
	e, b := setupReal(t, nil)
	rev := filepath.Join(b.dir, "revision")
	if err := os.MkdirAll(filepath.Join(rev, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rev, "notes.txt"), []byte("pristine\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rev, "scripts", "hi.sh"), []byte("#!/bin/sh\necho hi from $(basename \"$PWD\")\n"), 0o555); err != nil {
		t.Fatal(err)
	}
	yaml := "name: sealed\nsteps:\n" +
		"  - id: write\n    run: cat notes.txt && echo changed > notes.txt && ./scripts/hi.sh > greeting.txt\n    artifacts: [greeting.txt]\n" +
		"  - id: read\n    run: cat notes.txt greeting.txt \"$ROUTINES_ARTIFACTS_IN/write/greeting.txt\"\n"
	r, err := spec.Parse("routine.yaml", []byte(yaml), rev)
	if err != nil {
		t.Fatal(err)
	}
	r.Sealed = true
	for i := range 2 {
		run, err := b.store.RunCreate(t.Context(), &store.RunCreateParams{
			ID: "01SEALED00000000000000000" + string(rune('A'+i)) + "0", Routine: r.Name, Revision: r.Revision,
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		done, err := e.Execute(context.Background(), r, run)
		if err != nil || done.State != routine.StateSucceeded {
			t.Fatalf("run %d: %v %+v", i, err, done.Error)
		}
		lines, err := b.store.LogList(t.Context(), &store.LogListParams{RunID: run.ID, Step: "read"})
		if err != nil {
			t.Fatal(err)
		}
		var text string
		for _, l := range lines {
			text += l.Text + "|"
		}
		// Each run starts from the pristine revision, sees its own writes,
		// and its workspace directory is named for the run.
		if want := "changed|hi from " + run.ID + ".routine|hi from " + run.ID + ".routine|"; text != want {
			t.Fatalf("run %d read %q, want %q", i, text, want)
		}
		if _, err := os.Stat(e.Workspace(run.ID) + ".routine"); !os.IsNotExist(err) {
			t.Fatalf("run %d: its copy is still there (%v)", i, err)
		}
	}
	if data, err := os.ReadFile(filepath.Join(rev, "notes.txt")); err != nil || string(data) != "pristine\n" {
		t.Fatalf("the revision changed: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(rev, "greeting.txt")); !os.IsNotExist(err) {
		t.Fatalf("a step wrote into the revision: %v", err)
	}
}

// dirProbe is a step kind that records the directory its steps are given,
// and whether the run's copy of a sealed revision exists then.
type dirProbe struct {
	name   string
	e      **engine.Engine
	dir    *string
	copied *bool
}

func (p dirProbe) Name() string { return p.name }

func (p dirProbe) Execute(_ context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	*p.dir = x.Dir
	_, err := os.Stat((*p.e).Workspace(x.RunID) + ".routine")
	*p.copied = err == nil
	return &stepkind.Result{}, nil
}

// dirFreeProbe is a dirProbe of a kind that uses no routine directory.
type dirFreeProbe struct{ dirProbe }

func (dirFreeProbe) DirFree() {}

// A run of a sealed revision copies it only for the first step whose kind
// may use the directory: a step of a kind that does not (state, http ...)
// is given the revision as it is, and nothing is copied for it.
func TestSealedRevisionCopiedOnlyForStepsThatUseIt(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	var (
		e                    *engine.Engine
		freeDir, usesDir     string
		freeCopied, usesCopy bool
	)
	e = engine.New(engine.Config{Store: b.store, StateDir: filepath.Join(b.dir, ".routines"), Kinds: stepkind.NewRegistry(
		dirFreeProbe{dirProbe{name: "state", e: &e, dir: &freeDir, copied: &freeCopied}},
		dirProbe{name: "http", e: &e, dir: &usesDir, copied: &usesCopy},
	)})
	rev := filepath.Join(b.dir, "revision")
	if err := os.MkdirAll(rev, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "name: sealed\nsteps:\n  - id: free\n    state: { get: x }\n  - id: uses\n    http: { url: \"http://127.0.0.1:1/\" }\n"
	r, err := spec.Parse("routine.yaml", []byte(yaml), rev)
	if err != nil {
		t.Fatal(err)
	}
	r.Sealed = true
	run, err := b.store.RunCreate(t.Context(), &store.RunCreateParams{ID: "01SEALEDPROBE0000000000000", Routine: r.Name,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := e.Execute(context.Background(), r, run); err != nil || done.State != routine.StateSucceeded {
		t.Fatalf("run: %v %+v", err, done.Error)
	}
	if freeDir != rev || freeCopied {
		t.Errorf("the step of a kind free of the directory was given %s (copy made: %v), want the revision %s and no copy", freeDir, freeCopied, rev)
	}
	if want := e.Workspace(run.ID) + ".routine"; usesDir != want || !usesCopy {
		t.Errorf("the step that may use the directory was given %s (copy made: %v), want %s", usesDir, usesCopy, want)
	}
	if _, err := os.Stat(e.Workspace(run.ID) + ".routine"); !os.IsNotExist(err) {
		t.Errorf("the copy is still there after the run (%v)", err)
	}
}
