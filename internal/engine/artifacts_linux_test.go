package engine_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/artifacts/local"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
)

// countingStore counts the calls the engine makes to an artifact store.
type countingStore struct {
	artifacts.Store
	puts, gets, lists atomic.Int32
}

func (c *countingStore) Put(ctx context.Context, run, step, name string, r io.ReadSeeker, size int64) (artifacts.Info, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, run, step, name, r, size)
}

func (c *countingStore) Get(ctx context.Context, run, step, name string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, run, step, name)
}

func (c *countingStore) List(ctx context.Context, run string) ([]artifacts.Info, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, run)
}

// worker is an engine of its own, with a state directory (and so run
// workspaces) of its own, on the bundle's store and artifact store: one
// machine of a deployment.
type worker struct {
	e    *engine.Engine
	kind *scriptKind
	dir  string
}

// artifactsSetup returns a bundle with an artifact store in a directory
// and a function that starts workers on it.
func artifactsSetup(t *testing.T) (*testBundle, *countingStore, string, func() *worker) {
	t.Helper()
	b := newBundle(t)
	dir := filepath.Join(b.dir, "artifact-store")
	ls, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	st := &countingStore{Store: ls}
	n := 0
	newWorker := func() *worker {
		n++
		w := &worker{kind: newScriptKind(), dir: filepath.Join(b.dir, "worker-"+string(rune('0'+n)))}
		w.e = engine.New(engine.Config{
			Store: b.store, Kinds: stepkind.NewRegistry(w.kind), StateDir: w.dir,
			Artifacts: st, RequeueAfter: time.Minute,
		})
		return w
	}
	return b, st, dir, newWorker
}

// handoff is a routine whose second step reads what the first kept, and
// whose first attempt of that step sends the run back to the queue: the
// run stops there with its first step done, as when its worker dies.
const handoff = `
name: handoff
steps:
  - id: build
    run: keep report.txt=built keep out/deep/data.txt=deep
    artifacts: []
  - id: quiet
    run: ok
    artifacts: []
  - id: use
    run: later read build/report.txt read build/out/deep/data.txt
    retry: { attempts: 2 }
`

// startHandoff runs handoff on w until it goes back to the queue, and
// returns the routine and the run as stored.
func startHandoff(t *testing.T, b *testBundle, w *worker) (*routine.Routine, *routine.Run) {
	t.Helper()
	ctx := t.Context()
	r, err := spec.Parse("routine.yaml", []byte(handoff), b.dir)
	if err != nil {
		t.Fatal(err)
	}
	run, err := b.store.RunCreate(ctx, &store.RunCreateParams{
		ID: "01TESTHANDOFF" + strings.Repeat("0", 13), Routine: r.Name, Revision: r.Revision,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var rq *engine.Requeue
	if _, err := w.e.Execute(ctx, r, run); !errors.As(err, &rq) || rq.Step != "use" {
		t.Fatalf("first attempt: %v, want a requeue at step use", err)
	}
	if run, err = b.store.RunGet(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	return r, run
}

// TestArtifactsReachAnotherWorker: a run stopped after its first step on
// one worker resumes on another, whose workspace lacks that step's
// artifacts: they are fetched from the artifact store, verified, before
// the next step starts, and it reads them where it always does.
func TestArtifactsReachAnotherWorker(t *testing.T) {
	t.Parallel()
	b, st, _, newWorker := artifactsSetup(t)
	a, other := newWorker(), newWorker()
	r, run := startHandoff(t, b, a)
	if got := st.puts.Load(); got != 2 {
		t.Fatalf("%d artifacts put, want the 2 of build", got)
	}

	done, recs := b.resume(t, other.e, r, run)
	if done.State != routine.StateSucceeded {
		t.Fatalf("resumed run: %s %+v", done.State, done.Error)
	}
	if got := strings.Join(other.kind.order, ","); got != "use" {
		t.Fatalf("the other worker ran %s, want use alone", got)
	}
	for _, rec := range recs {
		if rec.ID == "use" && rec.Outputs["read"] != "built,deep" {
			t.Fatalf("use read %q, want built,deep", rec.Outputs["read"])
		}
	}
	if got, err := os.ReadFile(filepath.Join(other.e.Workspace(run.ID), "artifacts", "build", "out", "deep", "data.txt")); err != nil || string(got) != "deep" {
		t.Fatalf("the other worker's workspace: %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(other.e.Workspace(run.ID), "artifacts", "quiet")); err != nil || !fi.IsDir() {
		t.Fatalf("the folder of a step that kept nothing: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(other.e.Workspace(run.ID), ".fetched")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the staging folder stayed: %v", err)
	}
	if log := b.logText(t, run.ID); !strings.Contains(log, "fetched 2 artifact(s) of step(s) build, quiet from the artifact store") {
		t.Fatalf("log:\n%s", log)
	}
	if st.lists.Load() != 1 || st.gets.Load() != 2 {
		t.Fatalf("%d lists, %d gets; want 1 and 2", st.lists.Load(), st.gets.Load())
	}
}

// TestArtifactsResumeHereCostsNothing: a run that resumes on the worker
// that ran its first steps finds their artifacts in its workspace and
// asks the store nothing.
func TestArtifactsResumeHereCostsNothing(t *testing.T) {
	t.Parallel()
	b, st, _, newWorker := artifactsSetup(t)
	a := newWorker()
	r, run := startHandoff(t, b, a)
	if done, _ := b.resume(t, a.e, r, run); done.State != routine.StateSucceeded {
		t.Fatalf("resumed run: %s %+v", done.State, done.Error)
	}
	if st.lists.Load() != 0 || st.gets.Load() != 0 {
		t.Fatalf("%d lists, %d gets of the store; want none", st.lists.Load(), st.gets.Load())
	}
}

// TestArtifactsDamagedFailTheRun: an artifact whose stored bytes no
// longer match their checksum fails the resumed run before any step, with
// an error that names it, and leaves nothing of it in the workspace.
func TestArtifactsDamagedFailTheRun(t *testing.T) {
	t.Parallel()
	b, _, dir, newWorker := artifactsSetup(t)
	a, other := newWorker(), newWorker()
	r, run := startHandoff(t, b, a)
	if err := os.WriteFile(filepath.Join(dir, run.ID, "build", "report.txt"), []byte("BUILT"), 0o600); err != nil {
		t.Fatal(err)
	}

	done, _ := b.resume(t, other.e, r, run)
	if done.State != routine.StateFailed || done.Error == nil || done.Error.Code != routine.CodeInternal ||
		!strings.Contains(done.Error.Message, "fetch the artifacts of step build") || !strings.Contains(done.Error.Message, "checksum mismatch") {
		t.Fatalf("run: %s %+v", done.State, done.Error)
	}
	if len(other.kind.order) != 0 {
		t.Fatalf("steps ran: %v", other.kind.order)
	}
	if _, err := os.Lstat(filepath.Join(other.e.Workspace(run.ID), "artifacts", "build")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a damaged fetch left the step's folder: %v", err)
	}
}

// TestArtifactsLinkRefused: a link a step leaves among its artifacts is
// not followed into the store: the step fails, saying so.
func TestArtifactsLinkRefused(t *testing.T) {
	t.Parallel()
	b, st, _, newWorker := artifactsSetup(t)
	w := newWorker()
	run, recs := b.run(t, t.Context(), w.e, `
name: link
steps:
  - id: plant
    run: keep a.txt=fine plant leak
    artifacts: []
`)
	if run.State != routine.StateFailed || len(recs) != 1 || recs[0].Error == nil ||
		recs[0].Error.Message != "save artifacts in the artifact store: leak: a symbolic link (not followed)" {
		t.Fatalf("run %s, steps %+v", run.State, recs)
	}
	infos, err := st.List(t.Context(), run.ID)
	if err != nil || len(infos) != 1 || infos[0].Name != "a.txt" {
		t.Fatalf("stored: %+v, %v; want a.txt alone", infos, err)
	}
}
