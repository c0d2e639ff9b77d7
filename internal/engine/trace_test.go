package engine_test

import (
	"context"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// tracedBundle is an engine whose spans a recorder keeps, with the run,
// routine and emit kinds, the routines of yamls to call and listen.
type tracedBundle struct {
	*testBundle
	e     *engine.Engine
	queue *scheduler.Queue
	cat   catalog
	spans *tracetest.SpanRecorder
}

func setupTraced(t *testing.T, yamls ...string) *tracedBundle {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	b := setupTracer(t, tp.Tracer("test"), yamls...)
	tp.RegisterSpanProcessor(b.spans)
	return b
}

// setupTracer is setupTraced with tracer (nil: none).
func setupTracer(t *testing.T, tracer trace.Tracer, yamls ...string) *tracedBundle {
	t.Helper()
	b := &tracedBundle{testBundle: newBundle(t), cat: catalog{}, spans: tracetest.NewSpanRecorder()}
	b.kind = newScriptKind()
	for _, y := range yamls {
		r, err := spec.Parse("routine.yaml", []byte(y), b.dir)
		if err != nil {
			t.Fatal(err)
		}
		b.cat[r.Name] = r
	}
	var all []*routine.Routine
	for _, r := range b.cat {
		all = append(all, r)
	}
	b.queue = scheduler.NewQueue(b.store, nil, nil)
	b.e = engine.New(engine.Config{
		Store:    b.store,
		Kinds:    stepkind.NewRegistry(b.kind, steps.RoutineKind{}, steps.EmitKind{}),
		StateDir: filepath.Join(b.dir, ".routines"),
		Routines: b.cat,
		Events:   events.New(scheduler.NewCatalog(all), b.queue, nil),
		Tracer:   tracer,
	})
	return b
}

// execute queues a run of routine name with ctx (which may carry a
// caller's span) and executes it.
func (b *tracedBundle) execute(t *testing.T, ctx context.Context, name string) *routine.Run {
	t.Helper()
	run, _, err := b.queue.Enqueue(ctx, &scheduler.Request{Routine: b.cat[name], Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}})
	if err != nil {
		t.Fatal(err)
	}
	run, err = b.e.Execute(context.Background(), b.cat[name], run)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// ended returns the ended spans named name, in the order they ended.
func (b *tracedBundle) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range b.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the value of attribute key of s as text.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func one(t *testing.T, b *tracedBundle, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	got := b.ended(name)
	if len(got) != 1 {
		t.Fatalf("%d spans %q, want 1", len(got), name)
	}
	return got[0]
}

// TestSpansFollowTheCallerIntoSubRunsAndEvents: a run queued within a
// caller's span gets a span in the caller's trace under it, a span per
// attempt of each step under the run's; a sub-run is a child of the step
// that called it, and a run queued by an emitted event joins the trace
// under the emit step; all of them are recorded with that trace.
func TestSpansFollowTheCallerIntoSubRunsAndEvents(t *testing.T) {
	t.Parallel()
	b := setupTraced(t, `
name: parent
steps:
  - id: flaky
    run: flaky 1
    retry: { attempts: 2, initial: 1ms }
  - id: call
    routine: { name: child }
  - id: tell
    emit: { event: parent.done }
`, `
name: child
steps:
  - id: inner
    run: ok
`, `
name: listener
triggers:
  - event: { name: parent.done }
steps:
  - id: noop
    run: ok
`)
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x0f, 7}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	run := b.execute(t, trace.ContextWithRemoteSpanContext(context.Background(), caller), "parent")
	if run.State != routine.StateSucceeded {
		t.Fatalf("parent %s: %+v", run.State, run.Error)
	}
	if run.TraceID != caller.TraceID().String() || run.ParentSpanID != caller.SpanID().String() {
		t.Fatalf("run trace %s parent %s, want the caller's %s %s", run.TraceID, run.ParentSpanID, caller.TraceID(), caller.SpanID())
	}
	rs := one(t, b, "run parent")
	if rs.SpanContext().TraceID() != caller.TraceID() || rs.Parent().SpanID() != caller.SpanID() || rs.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("run span in %s under %s (%s), want the caller's trace, under its span", rs.SpanContext().TraceID(), rs.Parent().SpanID(), rs.SpanKind())
	}
	flaky := b.ended("step flaky")
	if len(flaky) != 2 {
		t.Fatalf("%d spans of step flaky, want one per attempt", len(flaky))
	}
	for i, want := range []struct{ attempt, state, exit, code string }{{"1", "failed", "1", routine.CodeStepFailed}, {"2", "succeeded", "", ""}} {
		s := flaky[i]
		if s.Parent().SpanID() != rs.SpanContext().SpanID() || attr(s, "routines.attempt") != want.attempt || attr(s, "routines.state") != want.state ||
			attr(s, "routines.error_code") != want.code || attr(s, "routines.exit_code") != want.exit || attr(s, "routines.phase") != "main" {
			t.Errorf("attempt %d span: parent %s, attributes %v", i+1, s.Parent().SpanID(), s.Attributes())
		}
		if failed := s.Status().Code.String() == "Error"; failed != (want.state == "failed") {
			t.Errorf("attempt %d span status %v", i+1, s.Status())
		}
	}

	// The sub-run: recorded in the trace under the step that called it.
	callSpan := one(t, b, "step call")
	sub := one(t, b, "run child")
	if sub.SpanContext().TraceID() != caller.TraceID() || sub.Parent().SpanID() != callSpan.SpanContext().SpanID() || sub.SpanKind() != trace.SpanKindInternal {
		t.Errorf("sub-run span in %s under %s (%s), want under step call's span %s", sub.SpanContext().TraceID(), sub.Parent().SpanID(), sub.SpanKind(), callSpan.SpanContext().SpanID())
	}
	if inner := one(t, b, "step inner"); inner.Parent().SpanID() != sub.SpanContext().SpanID() {
		t.Errorf("step inner under %s, want the sub-run's span", inner.Parent().SpanID())
	}
	subRuns, err := b.store.RunList(context.Background(), &store.RunListParams{Routine: "child"})
	if err != nil || len(subRuns) != 1 || subRuns[0].TraceID != run.TraceID || subRuns[0].ParentSpanID != callSpan.SpanContext().SpanID().String() {
		t.Fatalf("stored sub-runs %+v (%v): want one in trace %s under step call's span", subRuns, err, run.TraceID)
	}

	// The run the event queued: in the trace, under the emit step.
	tell := one(t, b, "step tell")
	heard, err := b.store.RunList(context.Background(), &store.RunListParams{Routine: "listener"})
	if err != nil || len(heard) != 1 || heard[0].TraceID != run.TraceID || heard[0].ParentSpanID != tell.SpanContext().SpanID().String() {
		t.Fatalf("runs of listener %+v (%v): want one in trace %s under step tell's span", heard, err, run.TraceID)
	}
	if _, err := b.e.Execute(context.Background(), b.cat["listener"], heard[0]); err != nil {
		t.Fatal(err)
	}
	if l := one(t, b, "run listener"); l.Parent().SpanID() != tell.SpanContext().SpanID() || l.SpanContext().TraceID() != caller.TraceID() {
		t.Errorf("listener's run span under %s in %s, want under step tell", l.Parent().SpanID(), l.SpanContext().TraceID())
	}
}

// TestRunWithoutCallerStartsItsTrace: a run queued with no span gets a
// new trace id of its own, and its span is the root of that trace, on
// every execution of the run.
func TestRunWithoutCallerStartsItsTrace(t *testing.T) {
	t.Parallel()
	b := setupTraced(t, "name: alone\nsteps:\n  - id: fail\n    run: fail 3\n")
	run := b.execute(t, context.Background(), "alone")
	other := b.execute(t, context.Background(), "alone")
	if !trace.TraceID(mustTraceID(t, run.TraceID)).IsValid() || run.ParentSpanID != "" || run.TraceID == other.TraceID {
		t.Fatalf("runs' traces %q (parent %q) and %q: want two new ones", run.TraceID, run.ParentSpanID, other.TraceID)
	}
	spans := b.ended("run alone")
	if len(spans) != 2 {
		t.Fatalf("%d run spans, want 2", len(spans))
	}
	s := spans[0]
	if s.SpanContext().TraceID().String() != run.TraceID || s.Parent().IsValid() {
		t.Errorf("run span in %s under %v, want the root of %s", s.SpanContext().TraceID(), s.Parent().SpanID(), run.TraceID)
	}
	if s.Status().Code.String() != "Error" || s.Status().Description != routine.CodeStepFailed || attr(s, "routines.state") != "failed" || attr(s, "routines.step") != "fail" {
		t.Errorf("failed run's span: status %+v, attributes %v", s.Status(), s.Attributes())
	}
	if st := b.ended("step fail")[0]; attr(st, "routines.exit_code") != "3" {
		t.Errorf("step span attributes %v: want exit code 3", st.Attributes())
	}
}

func mustTraceID(t *testing.T, s string) trace.TraceID {
	t.Helper()
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatalf("trace id %q: %v", s, err)
	}
	return id
}

// TestTraceIDsWithoutTracer: an engine with no tracer makes no span, and
// the runs a run queues still join its trace.
func TestTraceIDsWithoutTracer(t *testing.T) {
	t.Parallel()
	b := setupTracer(t, nil, "name: outer\nsteps:\n  - id: call\n    routine: { name: inner }\n", "name: inner\nsteps:\n  - id: s\n    run: ok\n")
	run := b.execute(t, context.Background(), "outer")
	subs, err := b.store.RunList(context.Background(), &store.RunListParams{Routine: "inner"})
	if err != nil || run.State != routine.StateSucceeded || len(subs) != 1 || subs[0].TraceID != run.TraceID {
		t.Fatalf("outer %s in trace %s; sub-runs %+v (%v): want one in the same trace", run.State, run.TraceID, subs, err)
	}
}
