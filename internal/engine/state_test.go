package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// setupState returns an engine with the real state kind and the mock run
// kind, on a virtual clock.
func setupState(t *testing.T, secrets staticSecrets) (*engine.Engine, *testBundle, *clock.Virtual) {
	t.Helper()
	b := newBundle(t)
	b.kind = newScriptKind()
	clk := clock.NewAutoAdvance(time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC))
	e := engine.New(engine.Config{
		Store:    b.store,
		Kinds:    stepkind.NewRegistry(b.kind, steps.StateKind{}),
		StateDir: filepath.Join(b.dir, ".routines"),
		Clock:    clk,
		Secrets:  secrets,
	})
	return e, b, clk
}

// counter counts its runs in a state key named after an input; the count
// lives for an hour after the last run.
const counter = `
name: counter
inputs:
  host: { default: web-1 }
steps:
  - id: count
    state: { get: "runs/{{ input.host }}" }
  - id: bump
    state:
      put: "runs/{{ input.host }}"
      value: "{{ steps.count.outputs.found == 'true' ? int(steps.count.outputs.value) + 1 : 1 }}"
      ttl: 1h
  - id: report
    run: say run {{ steps.bump.outputs.value }}, existed {{ steps.bump.outputs.found }}
`

func TestStateCountsAcrossRuns(t *testing.T) {
	t.Parallel()
	e, b, clk := setupState(t, nil)
	count := func() string {
		t.Helper()
		run, recs := b.run(t, context.Background(), e, counter)
		if run.State != routine.StateSucceeded || len(recs) != 3 {
			t.Fatalf("state %s, error %+v, steps %s", run.State, run.Error, stepStates(recs))
		}
		if recs[0].Kind != "state" || recs[1].Kind != "state" {
			t.Fatalf("kinds %s, %s; want state", recs[0].Kind, recs[1].Kind)
		}
		lines, err := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID, Step: "report"})
		if err != nil || len(lines) != 1 {
			t.Fatalf("logs of report: %+v, %v", lines, err)
		}
		return lines[0].Text
	}
	var got []string
	for range 3 {
		got = append(got, count())
		clk.Advance(59 * time.Minute)
	}
	// Each put renewed the hour; two hours without a run let it expire.
	clk.Advance(2 * time.Hour)
	got = append(got, count())
	want := []string{"run 1, existed false", "run 2, existed true", "run 3, existed true", "run 1, existed false"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("reports %q, want %q", got, want)
	}
}

func TestStateKeyRenderedInvalidFailsStep(t *testing.T) {
	t.Parallel()
	e, b, _ := setupState(t, nil)
	run, recs := b.run(t, context.Background(), e, strings.Replace(counter, "default: web-1", `default: "web 1"`, 1))
	if run.State != routine.StateFailed || run.Error == nil || run.Error.Step != "count" ||
		!strings.Contains(run.Error.Message, `state key "runs/web 1" must be`) {
		t.Fatalf("state %s, error %+v", run.State, run.Error)
	}
	if got := stepStates(recs); got != "count=failed bump=cancelled report=cancelled" {
		t.Fatalf("steps %s", got)
	}
}

// A secret is never kept in the state store: the step fails, naming no value.
func TestStateRefusesSecrets(t *testing.T) {
	t.Parallel()
	e, b, clk := setupState(t, staticSecrets{"TOKEN": "s3cret"})
	run, recs := b.run(t, context.Background(), e, `
name: cache
secrets: [TOKEN]
steps:
  - id: keep
    state: { put: token, value: "Bearer {{TOKEN}}" }
`)
	if run.State != routine.StateFailed || !strings.Contains(recs[0].Error.Message, "secrets are never kept in state") {
		t.Fatalf("state %s, error %+v", run.State, recs[0].Error)
	}
	_, found, err := b.store.StateGet(context.Background(), &store.StateGetParams{Routine: "cache", Key: "token", Now: clk.Now()})
	if err != nil || found {
		t.Fatalf("the key was stored: %v, %v", found, err)
	}
}
