package scheduler_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// panickyKind is a run step kind with a bug: the line "panic" panics;
// any other line works for a while and succeeds.
type panickyKind struct{}

func (panickyKind) Name() string { return "run" }

func (panickyKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	if x.Action.Run == "panic" {
		panic("kaboom: a step kind bug")
	}
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &stepkind.Result{}, nil
}

// panickySecrets is a secret provider with a bug, for one routine.
type panickySecrets struct{}

func (panickySecrets) Resolve(_ context.Context, _ *routine.Routine, run *routine.Run) (map[string]string, error) {
	if run.Routine == "vault-bug" {
		panic("kaboom: a secret provider bug")
	}
	return map[string]string{}, nil
}

// TestEscapePanickingKindFailsOnlyItsStep runs routines whose step kind
// or secret provider panics beside routines that work, in one scheduler
// and engine. Each panic fails its own run with internal_error (the panic
// value in the message, the stack only in the log); the other runs in
// flight complete, and the process lives on. Before, the panic ended the
// process with every run in flight.
func TestEscapePanickingKindFailsOnlyItsStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	one := func(name, line string) *routine.Routine {
		return &routine.Routine{Name: name, Revision: "r1", Steps: []routine.Step{
			{ID: "s", Action: routine.Action{Run: line}},
			{ID: "after", Action: routine.Action{Run: "ok"}},
		}}
	}
	calm, boom, vault := one("calm", "ok"), one("boom", "panic"), one("vault-bug", "ok")
	s := scheduler.New(scheduler.Config{
		Store: st,
		Executor: engine.New(engine.Config{Store: st, Kinds: stepkind.NewRegistry(panickyKind{}),
			StateDir: filepath.Join(dir, ".routines"), Secrets: panickySecrets{}}),
		Catalog: scheduler.NewCatalog([]*routine.Routine{calm, boom, vault}),
		Worker:  "test:1", Workers: 8, Lease: time.Minute,
	})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	var ids []string
	byID := map[string]string{}
	for _, r := range []*routine.Routine{calm, boom, calm, vault, calm, boom, calm} {
		run, err := enqueue(context.Background(), st, s, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID)
		byID[run.ID] = r.Name
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		run, err := st.RunGet(context.Background(), id)
		for err == nil && !run.State.Final() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			run, err = st.RunGet(context.Background(), id)
		}
		if err != nil {
			t.Fatal(err)
		}
		switch name := byID[id]; name {
		case "calm":
			if run.State != routine.StateSucceeded {
				t.Errorf("run %s of calm ended %s beside the panics: %+v", id, run.State, run.Error)
			}
		default:
			e := run.Error
			if run.State != routine.StateFailed || e == nil || e.Code != routine.CodeInternal || !strings.Contains(e.Message, "kaboom") || strings.Contains(e.Message, "goroutine") {
				t.Fatalf("run %s of %s ended %s with %+v; want failed with internal_error naming the panic, no stack (recovery layer)", id, name, run.State, e)
			}
			if name != "boom" {
				continue
			}
			recs, err := st.StepList(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || recs[0].State != routine.StateFailed || recs[0].Attempts != 1 || recs[0].Error.Code != routine.CodeInternal || recs[1].State != routine.StateCancelled {
				t.Errorf("steps of %s: %+v %+v; want s failed once with internal_error, after never started", id, recs[0], recs[1])
			}
		}
	}
	n, err := st.RunCount(context.Background(), &store.RunCountParams{States: []routine.State{routine.StateRunning}})
	if err != nil || n[routine.StateRunning] != 0 {
		t.Fatalf("running runs left: %v %v", n, err)
	}
}

// panickyExecutor panics on the runs of routine "bug" and hands the
// others to next.
type panickyExecutor struct{ next scheduler.Executor }

func (p panickyExecutor) Execute(ctx context.Context, r *routine.Routine, run *routine.Run) (*routine.Run, error) {
	if r.Name == "bug" {
		panic("kaboom: an executor bug")
	}
	return p.next.Execute(ctx, r, run)
}

// TestEscapePanickingExecutorFailsItsRun: whatever executor the
// scheduler drives, a panic in it fails that run with internal_error and
// the scheduler goes on with the others.
func TestEscapePanickingExecutorFailsItsRun(t *testing.T) {
	t.Parallel()
	bug, fine := &routine.Routine{Name: "bug"}, &routine.Routine{Name: "fine"}
	s, b := setup(t, 0, bug, fine)
	s.Shutdown(context.Background())
	s = scheduler.New(scheduler.Config{Store: b.st, Executor: panickyExecutor{b.exec},
		Catalog: scheduler.NewCatalog([]*routine.Routine{bug, fine}), Worker: "test:2", Workers: 2})
	s.Start(context.Background())
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	broken, err := enqueue(context.Background(), b.st, s, bug)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := enqueue(context.Background(), b.st, s, fine)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-b.exec.done:
		if id != ok.ID {
			t.Fatalf("finished %s, want %s", id, ok.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other run did not finish after the panic (recovery layer)")
	}
	ended, stop := s.Watch(broken.ID)
	defer stop()
	run, err := b.st.RunGet(context.Background(), broken.ID)
	if err == nil && !run.State.Final() {
		<-ended
		run, err = b.st.RunGet(context.Background(), broken.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	if run.State != routine.StateFailed || run.Error == nil || run.Error.Code != routine.CodeInternal || !strings.Contains(run.Error.Message, "kaboom") {
		t.Fatalf("panicked run ended %s with %+v; want failed with internal_error (recovery layer)", run.State, run.Error)
	}
}
