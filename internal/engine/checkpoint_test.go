package engine_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// writeLog is a store that records the engine's writes, one line per call.
type writeLog struct {
	store.Store
	mu     sync.Mutex
	writes []string
}

func (w *writeLog) add(s string) {
	w.mu.Lock()
	w.writes = append(w.writes, s)
	w.mu.Unlock()
}

func (w *writeLog) RunUpdate(ctx context.Context, run *routine.Run) error {
	w.add("RunUpdate " + string(run.State))
	return w.Store.RunUpdate(ctx, run)
}

func (w *writeLog) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	var parts []string
	if p.Run != nil {
		parts = append(parts, fmt.Sprintf("run=%s/%d", p.Run.State, p.Run.Attempt))
	}
	for _, s := range p.Steps {
		parts = append(parts, s.ID+"="+string(s.State))
	}
	w.add("Checkpoint " + strings.Join(parts, " "))
	return w.Store.Checkpoint(ctx, p)
}

// A run's start rides with its first step's final record, and its end
// with its last step's: a two-step run costs two commits. A step starts
// only once the final record of the step before it is in the store.
func TestCheckpointsPerRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wl := &writeLog{Store: st}
	kind := newScriptKind()
	e := engine.New(engine.Config{Store: wl, Kinds: stepkind.NewRegistry(kind), StateDir: dir, Clock: clock.NewAutoAdvance(time.Now())})
	r, err := spec.Parse("routine.yaml", []byte("name: two\nsteps:\n  - id: a\n    run: ok\n  - id: b\n    run: ok\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	// Queued under an older revision of the file: the run records the one that ran.
	run, err := st.RunCreate(t.Context(), &store.RunCreateParams{ID: "01TESTCHECKPOINTS000000000", Routine: r.Name,
		Revision: "older", Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// When b starts, a's final record must be stored.
	var aAtB *routine.StepRun
	kind.onStart = func(id string) {
		if id != "b" {
			return
		}
		recs, err := st.StepList(context.Background(), run.ID)
		if err == nil && len(recs) > 0 {
			aAtB = recs[0]
		}
	}
	done, err := e.Execute(t.Context(), r, run)
	if err != nil || done.State != routine.StateSucceeded {
		t.Fatalf("Execute = %v, %v; want succeeded", done.State, err)
	}
	want := []string{
		"Checkpoint run=running/1 a=succeeded",
		"Checkpoint run=succeeded/1 b=succeeded",
	}
	if got := wl.writes; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if aAtB == nil || aAtB.ID != "a" || aAtB.State != routine.StateSucceeded {
		t.Errorf("when b started, the store held %+v, want a succeeded", aAtB)
	}
	if stored, err := st.RunGet(t.Context(), run.ID); err != nil || stored.Revision != r.Revision {
		t.Errorf("stored revision %q, %v; want %q, the one that ran", stored.Revision, err, r.Revision)
	}
}

// A worker whose lease expired while its step ran finds the run taken
// over by another worker: it starts no further step, and writes nothing
// over the new holder's run.
func TestTakenOverRunStopsAtTheNextStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kind := newScriptKind()
	e := engine.New(engine.Config{Store: st, Kinds: stepkind.NewRegistry(kind), StateDir: dir, Clock: clock.NewAutoAdvance(time.Now())})
	r, err := spec.Parse("routine.yaml", []byte("name: two\nsteps:\n  - id: a\n    run: ok\n  - id: b\n    run: ok\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := st.RunCreate(ctx, &store.RunCreateParams{ID: "01TESTTAKEOVER000000000000", Routine: r.Name, QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	claim := func(worker string, now time.Time) *routine.Run {
		runs, err := st.RunClaim(ctx, &store.RunClaimParams{Worker: worker, Now: now, Lease: time.Second})
		if err != nil || len(runs) != 1 {
			t.Fatalf("claim by %s: %d runs, %v", worker, len(runs), err)
		}
		return runs[0].Run
	}
	run := claim("w1", time.Now())
	kind.onStart = func(id string) {
		if id == "a" { // w1's lease runs out while a runs; w2 claims the run
			claim("w2", time.Now().Add(time.Minute))
		}
	}
	_, err = e.Execute(ctx, r, run)
	if !errors.Is(err, routine.ErrConflict) {
		t.Fatalf("Execute = %v, want an error wrapping ErrConflict", err)
	}
	if got := strings.Join(kind.order, ","); got != "a" {
		t.Errorf("steps started: %s, want only a", got)
	}
	stored, err := st.RunGet(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != routine.StateRunning || stored.Worker != "w2" || stored.Attempt != 0 {
		t.Errorf("run after the takeover: %s by %s attempt %d; want running by w2, untouched", stored.State, stored.Worker, stored.Attempt)
	}
	if recs, _ := st.StepList(ctx, run.ID); len(recs) != 0 {
		t.Errorf("w1 wrote %d step records over w2's run", len(recs))
	}
}

// downStore is a store whose checkpoints fail, as a database that
// restarts does, for the first failures calls.
type downStore struct {
	store.Store
	mu       sync.Mutex
	failures int
}

func (d *downStore) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	d.mu.Lock()
	down := d.failures > 0
	if down {
		d.failures--
	}
	d.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return d.Store.Checkpoint(ctx, p)
}

// setupDown returns an engine on a store whose checkpoints fail the
// first failures times, with the leases of worker w1; the store itself;
// and a two-step run of it, created with p.
func setupDown(t *testing.T, failures int, p *store.RunCreateParams) (*engine.Engine, store.Store, *routine.Routine, *routine.Run, *scriptKind) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kind := newScriptKind()
	e := engine.New(engine.Config{Store: &downStore{Store: st, failures: failures}, Kinds: stepkind.NewRegistry(kind), StateDir: dir,
		Clock: clock.NewAutoAdvance(time.Now()), Leases: scheduler.NewLeases(st, "w1", time.Minute, nil, nil)})
	r, err := spec.Parse("routine.yaml", []byte("name: two\nsteps:\n  - id: a\n    run: ok\n  - id: b\n    run: ok\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Routine, p.Trigger = r.Name, routine.TriggerInfo{Kind: routine.TriggerManual}
	run, err := st.RunCreate(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return e, st, r, run, kind
}

// A store that fails for a while (a database restarting) holds the run
// at its next step until a's final record is stored: b starts after it,
// and nothing is lost.
func TestCheckpointWaitsForTheStore(t *testing.T) {
	t.Parallel()
	e, st, r, run, kind := setupDown(t, 5, // more than commitTries
		&store.RunCreateParams{ID: "01TESTSTOREDOWN00000000000", QueuedAt: time.Now()})
	var aAtB *routine.StepRun
	kind.onStart = func(id string) {
		if recs, err := st.StepList(context.Background(), run.ID); id == "b" && err == nil && len(recs) > 0 {
			aAtB = recs[0]
		}
	}
	done, err := e.Execute(t.Context(), r, run)
	if err != nil || done.State != routine.StateSucceeded {
		t.Fatalf("Execute = %v, %v; want succeeded", done.State, err)
	}
	if aAtB == nil || aAtB.ID != "a" || aAtB.State != routine.StateSucceeded {
		t.Errorf("when b started, the store held %+v, want a succeeded", aAtB)
	}
	if stored, err := st.RunGet(t.Context(), run.ID); err != nil || stored.State != routine.StateSucceeded {
		t.Errorf("stored run: %+v, %v; want succeeded", stored, err)
	}
}

// A run whose lease ran out while the store was down is not started a
// step further until its lease is renewed: no other worker may claim it
// while the step runs here.
func TestCheckpointRenewsTheLeaseWhenTheStoreIsBack(t *testing.T) {
	t.Parallel()
	// Held by w1, its lease long run out: the store was down.
	e, st, r, run, kind := setupDown(t, 2, &store.RunCreateParams{ID: "01TESTLEASERENEWED00000000",
		State: routine.StateRunning, Worker: "w1", Lease: time.Millisecond, QueuedAt: time.Now().Add(-time.Minute)})
	var claimed []*store.ClaimedRun
	kind.onStart = func(id string) {
		if id == "b" {
			claimed, _ = st.RunClaim(context.Background(), &store.RunClaimParams{Worker: "w2", Now: time.Now(), Lease: time.Minute})
		}
	}
	done, err := e.Execute(t.Context(), r, run)
	if err != nil || done.State != routine.StateSucceeded {
		t.Fatalf("Execute = %v, %v; want succeeded", done.State, err)
	}
	if len(claimed) != 0 {
		t.Errorf("w2 claimed the run while b ran on w1")
	}
}
