package engine_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// noHTTP fails every request: the in-process path must send none.
type noHTTP struct{ sent atomic.Int32 }

func (n *noHTTP) RoundTrip(*http.Request) (*http.Response, error) {
	n.sent.Add(1)
	return nil, http.ErrServerClosed
}

const watch = `
name: watch
inputs:
  host: { default: web9 }
steps:
  - id: alert
    emit:
      event: cpu.alert
      data: { host: "{{ input.host }}" }
      dedupe: "{{ input.host }}"
`

const page = `
name: page
triggers:
  - event: { name: cpu.alert, window: 1h }
steps:
  - id: page
    run: say {{ event.host }}
`

// TestEmitInProcess: an emit step of a run the daemon executes makes the
// listening routine's run through the daemon's publisher and queue, with
// no HTTP and no daemon record (serve.json) to find.
func TestEmitInProcess(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	listener, err := spec.Parse("routine.yaml", []byte(page), b.dir)
	if err != nil {
		t.Fatal(err)
	}
	queue := scheduler.NewQueue(b.store, nil, nil)
	var wakes atomic.Int32
	queue.OnQueued(func() { wakes.Add(1) })
	transport := &noHTTP{}
	e := engine.New(engine.Config{
		Store:    b.store,
		Kinds:    stepkind.NewRegistry(steps.EmitKind{Client: &http.Client{Transport: transport}}),
		StateDir: filepath.Join(b.dir, ".routines"),
		Events:   events.New(scheduler.NewCatalog([]*routine.Routine{listener}), queue, nil),
	})
	var pageRuns []string
	for i, want := range []string{"false", "true"} {
		run, recs := b.run(t, context.Background(), e, watch)
		if run.State != routine.StateSucceeded {
			t.Fatalf("watch %d: %s %+v", i, run.State, run.Error)
		}
		ids, _ := recs[0].Outputs["run_ids"].([]any)
		if len(ids) != 1 || recs[0].Outputs["deduplicated"] != want {
			t.Fatalf("emit %d outputs: %v", i, recs[0].Outputs)
		}
		pageRuns = append(pageRuns, ids[0].(string))
	}
	if pageRuns[0] != pageRuns[1] {
		t.Fatalf("the second emit with the same key made run %s, want %s", pageRuns[1], pageRuns[0])
	}
	runs, err := b.store.RunList(context.Background(), &store.RunListParams{Routine: "page"})
	if err != nil || len(runs) != 1 || runs[0].ID != pageRuns[0] || runs[0].State != routine.StateQueued {
		t.Fatalf("runs of page: %+v %v", runs, err)
	}
	if string(runs[0].Trigger.Payload) != `{"host":"web9"}` || runs[0].Trigger.Kind != events.TriggerKind {
		t.Fatalf("page's trigger: %+v", runs[0].Trigger)
	}
	if wakes.Load() != 1 || transport.sent.Load() != 0 {
		t.Fatalf("%d wake-ups (want 1: the workers hear of the run), %d requests sent (want none)", wakes.Load(), transport.sent.Load())
	}
}
