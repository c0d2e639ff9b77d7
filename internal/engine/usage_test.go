package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// usageKind is a "run" kind whose every attempt takes 20ms at 1 GiB of
// peak memory and reports bytes and tokens; the first attempt of a step
// whose line is "flaky" fails after using them.
type usageKind struct {
	mu    sync.Mutex
	tries map[string]int
}

func (*usageKind) Name() string { return "run" }

func (k *usageKind) Execute(_ context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	k.mu.Lock()
	k.tries[x.StepID]++
	try := k.tries[x.StepID]
	k.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	res := &stepkind.Result{MaxRSSKB: 1 << 20, Usage: routine.Usage{
		BytesSent: 100, BytesReceived: 1000,
		Tokens: map[string]routine.Tokens{"model-" + x.StepID: {Input: 10, Output: 20}},
	}}
	if x.Action.Run == "flaky" && try == 1 {
		return res, errors.New("exit status 1")
	}
	return res, nil
}

// stepRecords keeps the final records of a run's steps as the engine
// gives them to its observer.
type stepRecords struct {
	engine.NopObserver
	mu   sync.Mutex
	recs map[string]routine.StepRun
	run  routine.Run
}

func (o *stepRecords) RunFinished(run *routine.Run) {
	o.mu.Lock()
	o.run = *run
	o.mu.Unlock()
}

func (o *stepRecords) StepFinished(_ *routine.Run, s *routine.StepRun) {
	o.mu.Lock()
	o.recs[s.ID] = *s
	o.mu.Unlock()
}

func TestUsageSumsAttemptsAndSteps(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	obs := &stepRecords{recs: map[string]routine.StepRun{}}
	e := engine.New(engine.Config{
		Store: b.store, Kinds: stepkind.NewRegistry(&usageKind{tries: map[string]int{}}),
		StateDir: filepath.Join(b.dir, ".routines"), Observer: obs,
	})
	run, _ := b.run(t, t.Context(), e, `
name: metered
steps:
  - id: a
    run: flaky
    retry: { attempts: 2, backoff: constant, initial: 1ms }
  - id: b
    run: ok
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s", run.State)
	}
	a, bb := obs.recs["a"].Usage, obs.recs["b"].Usage
	// a's failed attempt counts too: two attempts of 20ms or more at 1 GiB.
	if a.BytesSent != 200 || a.BytesReceived != 2000 || a.Tokens["model-a"] != (routine.Tokens{Input: 20, Output: 40}) {
		t.Fatalf("a's usage %+v: want both attempts", a)
	}
	if a.GBSeconds < 0.04 || a.GBSeconds > 2 || bb.GBSeconds < 0.02 {
		t.Fatalf("GB-seconds: a %v (want ≥ 0.04: 1 GiB × 2 × 20ms), b %v", a.GBSeconds, bb.GBSeconds)
	}
	// The run's usage is its steps' summed.
	want := a
	want.Add(bb)
	got := obs.run.Usage
	if got.BytesSent != 300 || got.BytesReceived != 3000 || len(got.Tokens) != 2 || got.Tokens["model-b"].Output != 20 ||
		got.GBSeconds < want.GBSeconds-1e-9 || got.GBSeconds > want.GBSeconds+1e-9 {
		t.Fatalf("run's usage %+v, want %+v", got, want)
	}
}

func TestUsageKeptAcrossResume(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	// a finished and b had used two attempts when the process died; the
	// run record was not written with their usage.
	r, run := b.interrupted(t, `
name: resume-usage
steps:
  - id: a
    run: ok
  - id: b
    run: ok
`, &routine.StepRun{ID: "a", State: routine.StateSucceeded, Attempts: 1,
		Usage: routine.Usage{BytesSent: 100, Tokens: map[string]routine.Tokens{"m": {Input: 1, Output: 2}}}},
		&routine.StepRun{ID: "b", State: routine.StateRunning, Attempts: 2, Usage: routine.Usage{BytesReceived: 50, GBSeconds: 0.5}})

	run, recs := b.resume(t, e, r, run)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s", run.State)
	}
	want := routine.Usage{BytesSent: 100, BytesReceived: 50, GBSeconds: 0.5, Tokens: map[string]routine.Tokens{"m": {Input: 1, Output: 2}}}
	if u := run.Usage; u.BytesSent != want.BytesSent || u.BytesReceived != want.BytesReceived || u.GBSeconds != want.GBSeconds || u.Tokens["m"] != want.Tokens["m"] {
		t.Fatalf("run's usage %+v, want %+v", u, want)
	}
	// b ran again here: its record still counts its attempts before the crash.
	if recs[1].ID != "b" || recs[1].Usage.BytesReceived != 50 || recs[1].Attempts != 3 {
		t.Fatalf("b's record %+v", recs[1])
	}
}
