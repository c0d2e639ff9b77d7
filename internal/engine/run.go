package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/template"
	"github.com/routines-dev/routines/internal/workspace"
)

// runExec is one run in flight.
type runExec struct {
	e         *Engine
	r         *routine.Routine
	run       *routine.Run
	workspace string
	// dir is where the run's steps work: the routine directory, or the
	// run's private copy of a sealed one once a step needed it (stepDir);
	// guarded by dirMu.
	dir      string
	dirMu    sync.Mutex
	log      *runLog
	cp       *checkpointer
	redactor *secrets.Redactor
	// resume is what an earlier attempt of the run left, or nil for a run
	// that starts afresh. It is set before any step starts and read-only after.
	resume *resumeState

	mu   sync.Mutex // guards tctx, the run's resource totals and completed
	tctx *template.Context
	// completed lists main steps that succeeded, in completion order, for compensation.
	completed []*routine.Step
	// requeue is set when a step chose to wait for its next try out of
	// the queue (Config.RequeueAfter); guarded by mu.
	requeue *Requeue
}

// codeRequeue marks the internal payload of a step that waits for its
// next try out of the queue; it is never recorded as a run's error.
const codeRequeue = "requeue"

// codeUnwritable marks the internal payload of a try whose own write to
// the store (a state step, an emit, a sub-run) the storage refused
// (store.ErrUnwritable): not the step's failure, so the try is made again
// once the store writes, uncounted. It is never recorded.
const codeUnwritable = "store_unwritable"

// The backoff of a try made again while the store cannot write.
const (
	firstUnwritableWait = 100 * time.Millisecond
	maxUnwritableWait   = 5 * time.Second
)

func (e *Engine) newRunExec(r *routine.Routine, run *routine.Run) *runExec {
	x := &runExec{
		e:         e,
		r:         r,
		run:       run,
		workspace: e.Workspace(run.ID),
		dir:       r.Dir,
	}
	x.tctx = &template.Context{
		Input:   inputWithDefaults(r, run.Input),
		Event:   triggerEvent(run),
		Env:     r.Env,
		Steps:   map[string]template.StepContext{},
		Run:     template.RunInfo{ID: run.ID, Attempt: run.Attempt},
		Routine: template.RoutineInfo{Name: r.Name, Revision: r.Revision},
	}
	return x
}

// triggerEvent is the trigger payload as the event context: decoded JSON,
// or nil when there is none.
func triggerEvent(run *routine.Run) any {
	if len(run.Trigger.Payload) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(run.Trigger.Payload, &v); err != nil {
		return nil
	}
	return v
}

var errRunTimeout = errors.New("run timeout")

// execute drives the run to its final state. ctx is cancelled by the
// caller; the run timeout is added here.
func (x *runExec) execute(callerCtx context.Context) (_ *routine.Run, err error) {
	// The span holds the run's steps, on_failure and compensation included.
	callerCtx, span := x.startRunSpan(callerCtx)
	defer func() { x.endRunSpan(span, err) }()
	ctx := callerCtx
	var cancel context.CancelFunc
	if x.r.Timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, x.r.Timeout.D(), errRunTimeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	e := x.e
	// A run started before (Attempt > 0: Execute writes the attempt before
	// any step record) was interrupted; it goes on at its first unfinished
	// steps. A fresh run costs no read.
	var rs *resumeState
	if x.run.Attempt > 0 {
		if rs, err = loadResume(context.WithoutCancel(ctx), e.store, x.run.ID); err != nil {
			return x.run, err
		}
	}
	now := e.clock.Now().UTC()
	x.run.State = routine.StateRunning
	x.run.StartedAt = &now
	x.run.Attempt++
	x.tctx.Run.Attempt = x.run.Attempt
	// Store writes outlive a cancel: a cancelled run is still recorded.
	// The run's start is written with its first checkpoint: before or with
	// the first step record, so Attempt > 0 tells a resumed run.
	x.run.Revision = x.r.Revision // the revision that runs, when it changed since the run was queued
	x.cp = newCheckpointer(context.WithoutCancel(ctx), callerCtx, e.store, e.logger, x.run.ID, x.run.Worker)
	x.cp.traceID = x.run.TraceID
	if e.leases != nil && x.run.Worker != "" {
		x.cp.confirm = x.confirmLease
	}
	x.cp.runRecord(x.run)
	x.log = &runLog{x: x}
	e.observer.RunStarted(x.run)
	if rs != nil {
		n := x.applyResume(rs)
		x.log.system("", "resuming: %d step(s) already done", n)
	}

	failure := x.main(ctx)
	switch {
	case failure != nil && failure.Code == codeRequeue:
		return x.parkForRequeue()
	case failure != nil && failure.Code == routine.CodeCancelled && handedBack(callerCtx):
		if err := x.park(); err != nil {
			return x.run, err
		}
		x.e.logger.Info("run handed back to the queue", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID,
			"cause", context.Cause(callerCtx))
		return x.run, nil
	}
	state := routine.StateSucceeded
	if failure != nil {
		state = x.fail(callerCtx, failure)
	}
	end := e.clock.Now().UTC()
	x.run.State = state
	x.run.FinishedAt = &end
	x.run.Error = failure
	// The run's end shares a commit with its last steps' records.
	x.cp.runRecord(x.run)
	if err := x.cp.close(); err != nil {
		// The run goes on elsewhere, or here: its workspace is kept for
		// it (a step's sandbox keeps the directory it was given).
		return x.run, fmt.Errorf("finish run: %w", err)
	}
	x.cleanWorkspace()
	e.observer.RunFinished(x.run)
	e.logger.Info("run finished", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID, "state", state)
	return x.run, nil
}

// main resolves the secrets and runs the main steps. A panic on the way
// (a secret provider's, the engine's) fails the run with internal_error,
// which then ends as any failed run does.
func (x *runExec) main(ctx context.Context) (failure *routine.ErrorPayload) {
	defer func() {
		if v := recover(); v != nil {
			failure = x.panicked("", v)
		}
	}()
	if failure = x.prepare(ctx); failure == nil {
		failure = x.runList(ctx, routine.PhaseMain, x.r.Steps)
	}
	return failure
}

// panicked logs a panic of the run's own code, with its stack, and
// returns the internal_error that fails the run or step instead; the
// message names the panic value only.
func (x *runExec) panicked(step string, v any) *routine.ErrorPayload {
	x.e.logger.Error("panic", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID, "step", step, "panic", v, "stack", string(debug.Stack()))
	return x.payload(routine.CodeInternal, step, fmt.Sprintf("panic: %v", v))
}

// handedBack reports whether a run was stopped to go back to the queue
// rather than cancelled: its daemon shuts down, or its lease ran out. A
// sub-run is not: it ends cancelled, and its caller, handed back, calls
// it anew when it resumes.
func handedBack(ctx context.Context) bool {
	if ctx.Value(callChainKey{}) != nil {
		return false
	}
	cause := context.Cause(ctx)
	return errors.Is(cause, scheduler.ErrShutdown) || errors.Is(cause, scheduler.ErrLeaseLost)
}

// park ends this attempt of the run with the run still running, for its
// worker to requeue: its finished steps, and the attempts of the others,
// checkpointed, so the next attempt resumes after them. The run is never
// recorded ended, so it is neither counted as ended nor lost should the
// process die before the requeue.
func (x *runExec) park() error {
	x.run.State = routine.StateRunning
	x.run.FinishedAt = nil
	x.run.Error = nil
	x.cp.runRecord(x.run)
	if err := x.cp.close(); err != nil {
		return fmt.Errorf("park run: %w", err)
	}
	return nil
}

// parkForRequeue parks the run while a step waits for its next try in the
// queue.
func (x *runExec) parkForRequeue() (*routine.Run, error) {
	if err := x.park(); err != nil {
		return x.run, err
	}
	x.mu.Lock()
	rq := x.requeue
	x.mu.Unlock()
	x.e.logger.Info("run waits for a retry in the queue", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID, "step", rq.Step, "not_before", rq.At)
	return x.run, rq
}

// prepare resolves secrets before any step runs, and fetches the
// artifacts a resumed run's finished steps left on another worker. The
// workspace is created by the first step that uses it (a run step), or by
// that fetch: a mkdir and its removal cost as much as a builtin step's
// whole run.
func (x *runExec) prepare(ctx context.Context) *routine.ErrorPayload {
	values, err := x.e.secrets.Resolve(ctx, x.r, x.run)
	if ctx.Err() != nil {
		return x.interrupted(ctx, "")
	}
	if err != nil {
		return x.payload(routine.CodeSecretMissing, "", err.Error())
	}
	x.tctx.Secrets = values
	x.redactor = secrets.NewRedactor(slices.Collect(maps.Values(values)))
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if n := len(strings.TrimSpace(values[name])); n < secrets.MinRedactedLen {
			x.log.system("", "warning: secret %s has %d character(s): it is hidden wherever they appear in the output, and its encoded forms are not looked for", name, n)
		}
	}
	if x.resume != nil && x.e.artifacts != nil {
		if err := x.fetchArtifacts(ctx); err != nil {
			if ctx.Err() != nil {
				return x.interrupted(ctx, "")
			}
			return x.payload(routine.CodeInternal, "", err.Error())
		}
	}
	return nil
}

// confirmLease renews the lease of a run whose worker could not reach
// the store for a while, and fails, wrapping ErrConflict, when another
// worker took the run over meanwhile. A store that fails again confirms
// nothing and stops nothing: the next checkpoint tells.
func (x *runExec) confirmLease() error {
	hb, err := x.e.store.RunHeartbeat(context.Background(), &store.RunHeartbeatParams{
		Worker: x.run.Worker, IDs: []string{x.run.ID}, Now: x.e.clock.Now(), Lease: x.e.leases.Lease(),
	})
	if err == nil && len(hb.Renewed) == 0 {
		return fmt.Errorf("run %s: its lease ran out while the store was down, and another worker holds it: %w", x.run.ID, routine.ErrConflict)
	}
	return nil
}

// stepDir returns the directory a step of kind works in: the routine's,
// or for a sealed revision (pushed, shared by the runs of a worker) the
// run's private writable copy of it, made for the first step whose kind
// may use the directory. A run whose steps never do (state, http, emit
// ...) copies nothing: the copy cost a worker more than the rest of a
// no-op run (docs/performance.md).
func (x *runExec) stepDir(kind stepkind.Kind) (string, error) {
	if _, free := kind.(stepkind.DirFree); free || !x.r.Sealed {
		return x.r.Dir, nil
	}
	x.dirMu.Lock()
	defer x.dirMu.Unlock()
	if x.dir == x.r.Dir {
		dir, err := privateCopy(x.r.Dir, x.copyDir())
		if err != nil {
			return "", err
		}
		x.dir = dir
	}
	return x.dir, nil
}

// copyDir is where the run's private copy of a sealed revision goes.
func (x *runExec) copyDir() string { return x.e.Workspace(x.run.ID) + sealedCopySuffix }

// cleanWorkspace removes what steps left in the workspace (temporary files,
// output files) but the artifacts, without following the links they left.
func (x *runExec) cleanWorkspace() {
	if err := workspace.Clean(x.workspace); err != nil {
		x.e.logger.Warn("clean workspace", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID, "err", err)
	}
	// An earlier attempt of the run on this machine may have made the
	// copy, this one not.
	x.dirMu.Lock()
	copied := x.dir != x.r.Dir
	x.dirMu.Unlock()
	if copied || (x.r.Sealed && x.resume != nil) {
		if err := os.RemoveAll(x.copyDir()); err != nil {
			x.e.logger.Warn("remove the run's copy of its revision", "run_id", x.run.ID, "routine", x.r.Name, "trace_id", x.run.TraceID, "err", err)
		}
	}
}

// redactFunc returns redact when the run has secrets, else nil.
func (x *runExec) redactFunc() func(string) string {
	if x.redactor == nil {
		return nil
	}
	return x.redact
}

// redact replaces every secret value in s by ***.
func (x *runExec) redact(s string) string {
	return x.redactor.Redact(s)
}

// fail runs what follows a failure: compensation of completed steps in
// reverse order, then on_failure. It returns the final state. callerCtx is
// the caller's context, without the run timeout: compensation and the
// fallback path run even after the run timed out, and Ctrl-C still cuts
// them short. The run failed for good either way, so its state is failed
// (or dead) even then; only a failure that is itself a cancel makes it
// cancelled.
func (x *runExec) fail(callerCtx context.Context, failure *routine.ErrorPayload) routine.State {
	if failure.Code == routine.CodeCancelled {
		return routine.StateCancelled
	}
	for i := len(x.completed) - 1; i >= 0 && callerCtx.Err() == nil; i-- {
		s := x.completed[i]
		undo := &routine.Step{ID: s.ID, Action: *s.Compensate}
		x.runStep(callerCtx, routine.PhaseCompensate, undo)
	}
	if len(x.r.OnFailure) > 0 && callerCtx.Err() == nil {
		x.mu.Lock()
		x.tctx.Failure = template.FailureOf(failure)
		x.mu.Unlock()
		x.runList(callerCtx, routine.PhaseOnFailure, x.r.OnFailure)
	}
	if x.r.DeadLetter {
		return routine.StateDead
	}
	return routine.StateFailed
}

func (x *runExec) payload(code, step, msg string) *routine.ErrorPayload {
	return &routine.ErrorPayload{Code: code, Message: x.redact(msg), RunID: x.run.ID, Step: step}
}

// runList runs a list of steps (the main steps or on_failure) in dependency
// order, at most parallelism at a time. After the first failure no new step
// starts; running ones finish. It returns the first failure.
func (x *runExec) runList(ctx context.Context, phase routine.Phase, list []routine.Step) *routine.ErrorPayload {
	deps, dependents := graph(list)
	waiting := make([]int, len(list))
	started := make([]bool, len(list))
	for i := range list {
		waiting[i] = len(deps[i])
	}
	for i := range list {
		// A step an earlier attempt of the run finished is not run again:
		// it counts as finished for the steps waiting for it.
		if x.doneBefore(phase, list[i].ID) {
			started[i] = true
			for _, j := range dependents[i] {
				waiting[j]--
			}
		}
	}
	var ready []int
	for i := range list {
		if !started[i] && waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	parallelism := x.r.Parallelism
	if parallelism < 1 {
		parallelism = runtime.NumCPU() * 4 // as spec's default, for routines built in code
	}
	type done struct {
		i   int
		rec *routine.StepRun
	}
	results := make(chan done)
	running := 0
	var failure *routine.ErrorPayload
	for {
		for len(ready) > 0 && running < parallelism && failure == nil && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			started[i] = true
			running++
			go func() { results <- done{i, x.runStepGuarded(ctx, phase, &list[i])} }()
		}
		if running == 0 {
			break
		}
		d := <-results
		running--
		if d.rec.State == routine.StateQueued { // waits for its next try out of the queue
			if failure == nil { // a real failure wins: the run fails anyway
				failure = &routine.ErrorPayload{Code: codeRequeue, RunID: x.run.ID, Step: d.rec.ID}
			}
			continue
		}
		if d.rec.State == routine.StateFailed || d.rec.State == routine.StateCancelled {
			if failure == nil || failure.Code == codeRequeue {
				failure = d.rec.Error
			}
			continue
		}
		for _, j := range dependents[d.i] {
			if waiting[j]--; waiting[j] == 0 && !started[j] {
				ready = insertSorted(ready, j)
			}
		}
	}
	if failure == nil && ctx.Err() != nil {
		failure = x.interrupted(ctx, "")
	}
	if failure != nil && failure.Code != codeRequeue {
		// Record the steps that never started, so the trace shows them.
		for i := range list {
			if !started[i] {
				x.cp.step(&routine.StepRun{RunID: x.run.ID, ID: list[i].ID, Phase: phase, Kind: list[i].Kind(), State: routine.StateCancelled})
			}
		}
	}
	return failure
}

// graph returns, for each step, the indexes it waits for and the indexes
// waiting for it. A step without needs: waits for the step before it.
func graph(list []routine.Step) (deps, dependents [][]int) {
	index := make(map[string]int, len(list))
	for i := range list {
		index[list[i].ID] = i
	}
	deps = make([][]int, len(list))
	dependents = make([][]int, len(list))
	for i := range list {
		needs, explicit := list[i].NeedsList()
		if !explicit && i > 0 {
			deps[i] = []int{i - 1}
		}
		for _, n := range needs {
			if j, ok := index[n]; ok {
				deps[i] = append(deps[i], j)
			}
		}
		for _, j := range deps[i] {
			dependents[j] = append(dependents[j], i)
		}
	}
	return deps, dependents
}

func insertSorted(s []int, v int) []int {
	i := len(s)
	for i > 0 && s[i-1] > v {
		i--
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// interrupted is the payload of a run stopped by its timeout or by the
// caller; a cancel someone requested says so.
func (x *runExec) interrupted(ctx context.Context, step string) *routine.ErrorPayload {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRunTimeout):
		return x.payload(routine.CodeRunTimeout, step, fmt.Sprintf("run timed out after %s", x.r.Timeout.D()))
	case errors.Is(cause, scheduler.ErrCancelRequested):
		return x.payload(routine.CodeCancelled, step, cause.Error())
	}
	return x.payload(routine.CodeCancelled, step, "run cancelled")
}

// runStepGuarded is runStep on a goroutine of its own: a panic there
// fails the step with internal_error instead of ending the process.
func (x *runExec) runStepGuarded(ctx context.Context, phase routine.Phase, s *routine.Step) (rec *routine.StepRun) {
	defer func() {
		if v := recover(); v != nil {
			rec = &routine.StepRun{RunID: x.run.ID, ID: s.ID, Phase: phase, Kind: s.Kind(), State: routine.StateFailed, Error: x.panicked(s.ID, v)}
			x.finishStep(ctx, phase, s, rec)
		}
	}()
	return x.runStep(ctx, phase, s)
}

// runStep executes one step with its retries and returns its final record.
func (x *runExec) runStep(ctx context.Context, phase routine.Phase, s *routine.Step) *routine.StepRun {
	rec := &routine.StepRun{RunID: x.run.ID, ID: s.ID, Phase: phase, Kind: s.Kind(), State: routine.StateRunning}
	start := x.e.clock.Now().UTC()
	rec.StartedAt = &start

	skip, perr := x.condition(s)
	if perr == nil && skip {
		rec.State = routine.StateSkipped
		rec.StartedAt = nil
		x.finishStep(ctx, phase, s, rec)
		return rec
	}
	if perr == nil {
		perr = x.attempts(ctx, phase, s, rec)
	}
	if perr != nil && perr.Code == codeRequeue {
		// Not finished: recorded as waiting (queued), with its attempts
		// and the error of its last try.
		rec.State = routine.StateQueued
		x.cp.sync(x.cp.step(rec))
		return rec
	}
	rec.Error = perr
	switch {
	case perr == nil:
		rec.State = routine.StateSucceeded
	case perr.Code == routine.CodeCancelled:
		rec.State = routine.StateCancelled
	default:
		rec.State = routine.StateFailed
	}
	end := x.e.clock.Now().UTC()
	rec.FinishedAt = &end
	rec.DurationMs = end.Sub(start).Milliseconds()
	x.finishStep(ctx, phase, s, rec)
	return rec
}

// condition evaluates if:, reporting whether to skip the step.
func (x *runExec) condition(s *routine.Step) (bool, *routine.ErrorPayload) {
	if s.If == "" {
		return false, nil
	}
	cond, err := template.CompileCondition(s.If)
	if err == nil {
		var ok bool
		x.mu.Lock()
		ok, err = cond.Eval(x.tctx)
		x.mu.Unlock()
		if err == nil {
			return !ok, nil
		}
	}
	return false, x.payload(routine.CodeTemplate, s.ID, fmt.Sprintf("if: %v", err))
}

// finishStep queues the final record (written before the next step starts,
// or with the run's end) and publishes the step's outputs and status to
// later steps.
func (x *runExec) finishStep(ctx context.Context, phase routine.Phase, s *routine.Step, rec *routine.StepRun) {
	x.cp.finished(rec)
	x.mu.Lock()
	if phase != routine.PhaseCompensate {
		// Ids are unique across steps and on_failure, so both lists share the map.
		x.tctx.Steps[s.ID] = template.StepContext{Outputs: rec.Outputs, Status: string(rec.State)}
	}
	if phase == routine.PhaseMain && rec.State == routine.StateSucceeded && s.Compensate != nil {
		x.completed = append(x.completed, s)
	}
	x.mu.Unlock()
	x.e.observer.StepFinished(x.run, rec)
}

// attempts runs the tries of a step until one succeeds or they are spent.
func (x *runExec) attempts(ctx context.Context, phase routine.Phase, s *routine.Step, rec *routine.StepRun) *routine.ErrorPayload {
	kind, ok := x.e.kinds[s.Kind()]
	if !ok {
		return x.payload(routine.CodeInternal, s.ID, fmt.Sprintf("step kind %q is not available", s.Kind()))
	}
	tries := triesOf(s.Retry)
	// A step an earlier attempt of the run left unfinished goes on counting
	// its attempts, so a step that crashes the process cannot retry
	// forever; it gets at least one more try.
	if err := x.cp.settle(); err != nil {
		return x.payload(routine.CodeCancelled, s.ID, fmt.Sprintf("not started: %v", err))
	}
	rec.Usage = x.usageBefore(phase, s.ID)
	unwritableWait := time.Duration(0)
	for n := x.attemptsBefore(phase, s.ID) + 1; ; n++ {
		rec.Attempts = n
		x.cp.step(rec)
		x.e.observer.StepStarted(x.run, rec)
		perr := x.attempt(ctx, kind, s, rec, n)
		if perr == nil {
			return nil
		}
		if perr.Code == codeUnwritable {
			if unwritableWait == 0 {
				x.log.system(s.ID, "%s; trying again once it writes", perr.Message)
			}
			unwritableWait = min(max(2*unwritableWait, firstUnwritableWait), maxUnwritableWait)
			if err := x.e.clock.Sleep(ctx, unwritableWait); err != nil {
				return x.interrupted(ctx, s.ID)
			}
			n-- // this try does not count
			continue
		}
		perr.Attempt = n
		perr.Retryable = perr.Retryable && n < tries
		if !perr.Retryable {
			return perr
		}
		delay := retryDelay(s.Retry, n+1, perr)
		rec.Error = perr
		if x.e.requeue > 0 && delay > x.e.requeue && phase == routine.PhaseMain && ctx.Err() == nil {
			at := x.e.clock.Now().Add(delay)
			x.log.system(s.ID, "attempt %d/%d failed: %s; retrying in %s, from the queue", n, tries, perr.Message, delay.Round(time.Millisecond))
			x.mu.Lock()
			if x.requeue == nil || at.Before(x.requeue.At) {
				x.requeue = &Requeue{At: at, Step: s.ID}
			}
			x.mu.Unlock()
			return &routine.ErrorPayload{Code: codeRequeue, RunID: x.run.ID, Step: s.ID, Message: "waits for its next try in the queue"}
		}
		x.log.system(s.ID, "attempt %d/%d failed: %s; retrying in %s", n, tries, perr.Message, delay.Round(time.Millisecond))
		if err := x.e.clock.Sleep(ctx, delay); err != nil {
			return x.interrupted(ctx, s.ID)
		}
	}
}

// attempt runs one try of a step, in a span of its own.
func (x *runExec) attempt(runCtx context.Context, kind stepkind.Kind, s *routine.Step, rec *routine.StepRun, n int) (perr *routine.ErrorPayload) {
	runCtx, span := x.startStepSpan(runCtx, s, rec.Phase, n)
	defer func() { endStepSpan(span, rec, perr) }()
	action, env, err := x.render(s)
	if err != nil {
		code := routine.CodeTemplate
		if uv := (*template.UnsafeValueError)(nil); errors.As(err, &uv) {
			code = routine.CodeUnsafeValue
		}
		return x.payload(code, s.ID, err.Error())
	}
	ctx := runCtx
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(runCtx, s.Timeout.D())
		defer cancel()
	}
	budget := &stepBudget{}
	stdout := &stepOutput{log: x.log, step: s.ID, stream: routine.StreamStdout, budget: budget}
	stderr := &stepOutput{log: x.log, step: s.ID, stream: routine.StreamStderr, budget: budget, keep: true}
	dir, err := x.stepDir(kind)
	if err != nil {
		return x.payload(routine.CodeInternal, s.ID, fmt.Sprintf("copy the revision of %s for the run: %v", x.r.Name, err))
	}
	artifacts := filepath.Join(x.workspace, workspace.Artifacts)
	started := x.e.clock.Now()
	res, err := x.executeKind(ctx, kind, &stepkind.Execution{
		RunID:        x.run.ID,
		StepID:       s.ID,
		Phase:        rec.Phase,
		Attempt:      n,
		Action:       action,
		Dir:          dir,
		Workspace:    x.workspace,
		ArtifactsDir: filepath.Join(artifacts, s.ID),
		ArtifactsIn:  artifacts,
		Artifacts:    s.Artifacts,
		Env:          env,
		Permissions:  x.r.Permissions,
		Limits:       x.r.Limits,
		Resources:    x.r.Resources.Merge(s.Resources),
		Unconfined:   x.e.unconfined,
		AllowMissing: x.e.allowMissing,
		Stdout:       stdout,
		Stderr:       stderr,
		Routine:      x.r.Name,
		Namespace:    x.r.Namespace,
		State:        x.e.store,
		Now:          x.e.clock.Now,
		StateDir:     x.e.stateDir,
		Events:       x.e.events,
		Redact:       x.redactFunc(),
		Subrun: func(ctx context.Context, name string, input map[string]string) (*stepkind.Subrun, error) {
			return x.subrun(ctx, s.ID, name, input)
		},
	})
	var usage routine.Usage
	if res != nil {
		usage = res.Usage
		usage.GBSeconds += gbSeconds(res.MaxRSSKB, x.e.clock.Now().Sub(started))
	}
	if err == nil && rec.Phase == routine.PhaseMain && s.Artifacts != nil && x.e.artifacts != nil {
		var sent int64
		sent, err = x.saveArtifacts(ctx, s.ID)
		usage.BytesSent += sent
	}
	x.addUsage(rec, usage)
	stdout.finish()
	stderr.finish()
	if budget.dropped > 0 {
		x.log.system(s.ID, "output truncated: %d bytes past the %d MiB limit were not kept", budget.dropped, maxStepLogBytes>>20)
	}
	if res != nil {
		rec.ExitCode = res.ExitCode
		// Resource use adds up over the attempts of a step and the steps of a run.
		rec.CPUMs += (res.CPUUser + res.CPUSys).Milliseconds()
		rec.MaxRSSKB = max(rec.MaxRSSKB, res.MaxRSSKB)
		x.mu.Lock()
		x.run.CPUUserMs += res.CPUUser.Milliseconds()
		x.run.CPUSysMs += res.CPUSys.Milliseconds()
		x.run.MaxRSSKB = max(x.run.MaxRSSKB, res.MaxRSSKB)
		x.mu.Unlock()
		if err == nil {
			rec.Outputs = x.redactOutputs(res.Outputs)
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrUnwritable) && runCtx.Err() == nil {
		return x.payload(codeUnwritable, s.ID, err.Error())
	}
	// A step kind may describe its failure (stepkind.Error): a code such as
	// http_status, that another try cannot succeed (a syntax error), the
	// wait the other system asked for.
	code, retryable, after := stepkind.Describe(err)
	if code == "" {
		code = routine.CodeStepFailed
	}
	perr = x.payload(code, s.ID, err.Error())
	perr.Retryable = retryable
	perr.RetryAfterMs = after.Milliseconds()
	perr.StderrTail = stderr.stderrTail()
	if res != nil {
		perr.ExitCode = res.ExitCode
	}
	switch {
	case runCtx.Err() != nil:
		return x.interrupted(runCtx, s.ID)
	case ctx.Err() != nil:
		perr.Code = routine.CodeStepTimeout
		perr.Message = fmt.Sprintf("step timed out after %s", s.Timeout.D())
	}
	return perr
}

// executeKind runs one attempt of a step kind. A panic of the kind fails
// the step, for good, with an internal_error that names the panic value;
// its stack goes to the log. The run and every other run go on.
func (x *runExec) executeKind(ctx context.Context, kind stepkind.Kind, exec *stepkind.Execution) (res *stepkind.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			p := x.panicked(exec.StepID, fmt.Sprintf("step kind %s: %v", kind.Name(), v))
			res, err = nil, stepkind.Fail(p.Code, false, errors.New(p.Message))
		}
	}()
	return kind.Execute(ctx, exec)
}

// redactOutputs returns out with the secrets masked in its keys as well as
// its values, and in the keys and values within structured values: a step
// may name an output after a secret, an API may answer with a key named
// after one.
func (x *runExec) redactOutputs(out routine.Outputs) routine.Outputs {
	if x.redactor == nil {
		return out
	}
	return x.redactMap(out)
}

// redactMap masks the secrets in the keys and values of m. Keys that mask
// to the same text are told apart by a suffix (***, ***_2 …), in key
// order, so no value is lost.
func (x *runExec) redactMap(m map[string]any) map[string]any {
	red := make(map[string]any, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		rk := x.redact(k)
		for n := 2; ; n++ {
			if _, taken := red[rk]; !taken {
				break
			}
			rk = fmt.Sprintf("%s_%d", x.redact(k), n)
		}
		red[rk] = x.redactValue(m[k])
	}
	return red
}

// redactValue masks the secrets in a value of an output. A number or a
// true or false that writes a secret (a PIN) becomes the masked text.
func (x *runExec) redactValue(v any) any {
	switch v := v.(type) {
	case string:
		return x.redact(v)
	case map[string]any:
		return x.redactMap(v)
	case []any:
		red := make([]any, len(v))
		for i, e := range v {
			red[i] = x.redactValue(e)
		}
		return red
	}
	text := routine.OutputText(v)
	if red := x.redact(text); red != text {
		return red
	}
	return v
}

// render resolves the templates of a step's action and builds its env:
// routine env, then step env, then the declared secrets (also reachable as
// $NAME). Env values are rendered first, so {{ env.X }} elsewhere sees
// their rendered form.
func (x *runExec) render(s *routine.Step) (*routine.Action, map[string]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	a := s.Action
	c := *x.tctx
	// The routine's env, then the step's, which may use the routine's.
	env := make(map[string]string, len(x.r.Env)+len(a.Env))
	for _, layer := range []map[string]string{x.r.Env, a.Env} {
		c.Env = mergeEnv(env, layer)
		for k, v := range layer {
			r, err := renderString(v, &c)
			if err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", k, err)
			}
			env[k] = r
		}
	}
	c.Env = env
	// Every other string of the action and of its kind's struct, as
	// declared by the structs (template.MapStrings). The step's own action,
	// shared with every run, stays unrendered.
	// The run line is the exception: its values go to the shell as
	// environment variables the line refers to (template.ParseShell); so
	// is an http url, whose values are escaped for their part of it.
	var vars map[string]string
	a, err := template.MapStrings(a, func(path, s string) (string, error) {
		var r string
		var err error
		switch path {
		case "run":
			r, vars, err = renderRun(s, a.Shell, &c)
		case "http.url":
			r, err = renderURL(s, &c)
		default:
			r, err = renderString(s, &c)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, nil, err
	}
	full := make(map[string]string, len(env)+len(x.tctx.Secrets)+len(vars))
	for _, m := range []map[string]string{env, x.tctx.Secrets, vars} {
		for k, v := range m {
			full[k] = v
		}
	}
	a.Env = nil
	return &a, full, nil
}

func renderString(s string, c *template.Context) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.Parse(s)
	if err != nil {
		return "", err
	}
	return t.Render(c)
}

// renderRun renders a run line for shell: the line refers to the values,
// which it returns as variables for the step's environment.
func renderRun(s, shell string, c *template.Context) (string, map[string]string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil, nil
	}
	l, err := template.ParseShell(s, shell)
	if err != nil {
		return "", nil, err
	}
	return l.Render(c)
}

// renderURL renders an http url, each value escaped for the part of the
// address it is in (template.ParseURL).
func renderURL(s string, c *template.Context) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	u, err := template.ParseURL(s)
	if err != nil {
		return "", err
	}
	return u.Render(c)
}

func mergeEnv(a, b map[string]string) map[string]string {
	m := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

// inputWithDefaults fills declared inputs that the run did not set.
func inputWithDefaults(r *routine.Routine, in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+len(r.Inputs))
	for k, def := range r.Inputs {
		if def.Default != "" {
			out[k] = def.Default
		}
	}
	for k, v := range in {
		out[k] = v
	}
	return out
}
