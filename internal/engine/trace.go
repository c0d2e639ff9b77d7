package engine

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/routines-dev/routines/internal/routine"
)

// The attributes of the spans of runs and steps. They name runs, steps and
// what became of them: never an input, a payload value or a secret.
const (
	attrRunID     = attribute.Key("routines.run_id")
	attrRoutine   = attribute.Key("routines.routine")
	attrRevision  = attribute.Key("routines.revision")
	attrTrigger   = attribute.Key("routines.trigger")
	attrAttempt   = attribute.Key("routines.attempt")
	attrStep      = attribute.Key("routines.step")
	attrKind      = attribute.Key("routines.step_kind")
	attrPhase     = attribute.Key("routines.phase")
	attrState     = attribute.Key("routines.state")
	attrExitCode  = attribute.Key("routines.exit_code")
	attrErrorCode = attribute.Key("routines.error_code")
)

// runTraceContext returns ctx with the run's place in its trace, as the
// remote parent of its span: the trace id and parent span recorded when it
// was queued (scheduler.Queue.Enqueue), so an execution on any worker, or
// a resumed one, joins the same trace. A run with no parent span gets a
// root span in its trace (the SDK takes a parent's valid trace id even
// when its span id is not). The trace flags are not recorded: the run is
// taken as sampled, and the sampler decides for a root. A run without a
// trace id (queued before runs had one) leaves ctx as it is.
func runTraceContext(ctx context.Context, run *routine.Run) context.Context {
	tid, err := trace.TraceIDFromHex(run.TraceID)
	if err != nil {
		return ctx
	}
	sid, _ := trace.SpanIDFromHex(run.ParentSpanID) // zero, invalid, when none
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
}

// startRunSpan starts the span of this execution of the run, "run
// <routine>": a consumer of the queue, or, for a sub-run, an internal
// span under the step that called it.
func (x *runExec) startRunSpan(ctx context.Context) (context.Context, trace.Span) {
	ctx = runTraceContext(ctx, x.run)
	if x.e.tracer == nil {
		return ctx, trace.SpanFromContext(ctx) // holds the trace; ends as a no-op
	}
	kind := trace.SpanKindConsumer
	if x.run.Trigger.Kind == routine.TriggerRoutine {
		kind = trace.SpanKindInternal
	}
	ctx, span := x.e.tracer.Start(ctx, "run "+x.r.Name, trace.WithSpanKind(kind))
	if span.IsRecording() {
		span.SetAttributes(
			attrRunID.String(x.run.ID),
			attrRoutine.String(x.r.Name),
			attrRevision.String(x.r.Revision),
			attrTrigger.String(x.run.Trigger.Kind),
			attrAttempt.Int(x.run.Attempt+1), // this execution's, counted in execute
		)
	}
	return ctx, span
}

// endRunSpan ends the run's span with the state it reached (running, when
// it waits in the queue for a retry), and an error status naming the
// error code when it failed or the engine did.
func (x *runExec) endRunSpan(span trace.Span, err error) {
	if span.IsRecording() {
		span.SetAttributes(attrState.String(string(x.run.State)))
		var rq *Requeue
		switch {
		case err != nil && !errors.As(err, &rq):
			span.SetStatus(codes.Error, "the engine failed: see the daemon's log")
		case x.run.Error != nil:
			span.SetAttributes(attrErrorCode.String(x.run.Error.Code))
			if x.run.Error.Step != "" {
				span.SetAttributes(attrStep.String(x.run.Error.Step))
			}
			span.SetStatus(codes.Error, x.run.Error.Code)
		}
	}
	span.End()
}

// startStepSpan starts the span of one attempt of a step, "step <id>", a
// child of the run's; the HTTP calls of the attempt are its children
// (tracing.Transport).
func (x *runExec) startStepSpan(ctx context.Context, s *routine.Step, phase routine.Phase, n int) (context.Context, trace.Span) {
	if x.e.tracer == nil {
		return ctx, trace.SpanFromContext(ctx) // the run's, not ended here: End is a no-op on it
	}
	ctx, span := x.e.tracer.Start(ctx, "step "+s.ID)
	if span.IsRecording() {
		span.SetAttributes(
			attrRunID.String(x.run.ID),
			attrRoutine.String(x.r.Name),
			attrStep.String(s.ID),
			attrKind.String(s.Kind()),
			attrPhase.String(string(phase)),
			attrAttempt.Int(n),
		)
	}
	return ctx, span
}

// endStepSpan ends the span of an attempt with its outcome: its state,
// exit code (a run step's) and error code.
func endStepSpan(span trace.Span, rec *routine.StepRun, perr *routine.ErrorPayload) {
	if span.IsRecording() {
		state := routine.StateSucceeded
		switch {
		case perr == nil:
		case perr.Code == routine.CodeCancelled:
			state = routine.StateCancelled
		default:
			state = routine.StateFailed
		}
		span.SetAttributes(attrState.String(string(state)))
		if rec.ExitCode != nil {
			span.SetAttributes(attrExitCode.Int(*rec.ExitCode))
		}
		if perr != nil {
			span.SetAttributes(attrErrorCode.String(perr.Code))
			span.SetStatus(codes.Error, perr.Code)
		}
	}
	span.End()
}
