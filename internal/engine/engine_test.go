package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/routines-dev/routines/internal/template"
)

// scriptKind is a mock "run" kind: each run line is a tiny script of
// space-separated commands, so tests describe behaviour without processes.
//
//	ok                 succeed
//	fail N             fail with exit code N
//	flaky N            fail the first N attempts, then succeed
//	out K=V            set an output
//	say TEXT           print TEXT to stdout (rest of the line)
//	err TEXT           print TEXT to stderr (rest of the line)
//	block              wait until the context is done
//	wait NAME          wait until the step NAME has started
//	spew N             print N bytes of binary garbage without newlines
//	write WORD         print WORD alone, no newline, in one write (to stderr when WORD starts with !)
//	pad N              print N x's, no newline, in one write
//	limited MS         fail the first attempt as rate_limited, asking to wait MS milliseconds
//	later              fail the run's first attempt of the step, asking to retry in an hour
//	keep NAME=TEXT     write TEXT to $ROUTINES_ARTIFACTS/NAME
//	plant NAME         make $ROUTINES_ARTIFACTS/NAME a link to /etc/hostname
//	read STEP/NAME     append the text of $ROUTINES_ARTIFACTS_IN/STEP/NAME to the output read
type scriptKind struct {
	mu      sync.Mutex
	order   []string // step ids in start order
	started map[string]chan struct{}
	tries   map[string]int
	onStart func(id string) // called as a step starts, when set
}

// runVar is a reference to a {{ }} value in a run line, which the shell
// would expand; scriptKind expands it the same way.
var runVar = regexp.MustCompile(`"?\$\{(` + template.RunVarPrefix + `[0-9]+)\}"?`)

func newScriptKind() *scriptKind {
	return &scriptKind{started: map[string]chan struct{}{}, tries: map[string]int{}}
}

func (k *scriptKind) Name() string { return "run" }

func (k *scriptKind) startedCh(id string) chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch, ok := k.started[id]
	if !ok {
		ch = make(chan struct{})
		k.started[id] = ch
	}
	return ch
}

func (k *scriptKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	k.mu.Lock()
	k.order = append(k.order, x.StepID)
	k.tries[x.StepID]++
	try := k.tries[x.StepID]
	k.mu.Unlock()
	if k.onStart != nil {
		k.onStart(x.StepID)
	}
	ch := k.startedCh(x.StepID)
	select {
	case <-ch:
	default:
		close(ch)
	}
	res := &stepkind.Result{Outputs: routine.Outputs{}}
	if x.Artifacts != nil { // as the run kind does
		if err := os.MkdirAll(x.ArtifactsDir, 0o700); err != nil {
			return res, err
		}
	}
	words := strings.Fields(runVar.ReplaceAllStringFunc(x.Action.Run, func(ref string) string {
		return x.Env[runVar.FindStringSubmatch(ref)[1]]
	}))
	for i := 0; i < len(words); i++ {
		switch words[i] {
		case "ok":
		case "fail":
			i++
			code, _ := strconv.Atoi(words[i])
			res.ExitCode = &code
			fmt.Fprintf(x.Stderr, "failing with %d\n", code)
			return res, fmt.Errorf("exit status %d", code)
		case "flaky":
			i++
			n, _ := strconv.Atoi(words[i])
			if try <= n {
				code := 1
				res.ExitCode = &code
				return res, fmt.Errorf("exit status 1")
			}
		case "out":
			i++
			key, val, _ := strings.Cut(words[i], "=")
			res.Outputs[key] = val
		case "say":
			fmt.Fprintln(x.Stdout, strings.Join(words[i+1:], " "))
			i = len(words)
		case "err":
			fmt.Fprintln(x.Stderr, strings.Join(words[i+1:], " "))
			i = len(words)
		case "block":
			<-ctx.Done()
			return res, ctx.Err()
		case "wait":
			i++
			select {
			case <-k.startedCh(words[i]):
			case <-ctx.Done():
				return res, ctx.Err()
			}
		case "write":
			i++
			if w, ok := strings.CutPrefix(words[i], "!"); ok {
				io.WriteString(x.Stderr, w)
			} else {
				io.WriteString(x.Stdout, words[i])
			}
		case "limited":
			i++
			ms, _ := strconv.Atoi(words[i])
			if try == 1 {
				return res, &stepkind.Error{Code: routine.CodeRateLimited, Retryable: true, After: time.Duration(ms) * time.Millisecond,
					Err: errors.New("429 Too Many Requests")}
			}
		case "later":
			if x.Attempt == 1 {
				return res, &stepkind.Error{Code: routine.CodeRateLimited, Retryable: true, After: time.Hour, Err: errors.New("come back later")}
			}
		case "keep", "plant":
			i++
			p := filepath.Join(x.ArtifactsDir, strings.SplitN(words[i], "=", 2)[0])
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil { // out/deep/…
				return res, err
			}
			var err error
			if words[i-1] == "plant" {
				err = os.Symlink("/etc/hostname", p)
			} else {
				err = os.WriteFile(p, []byte(strings.SplitN(words[i], "=", 2)[1]), 0o600)
			}
			if err != nil {
				return res, err
			}
		case "read":
			i++
			b, err := os.ReadFile(filepath.Join(x.ArtifactsIn, words[i]))
			if err != nil {
				return res, err
			}
			res.Outputs["read"] = strings.TrimPrefix(routine.OutputText(res.Outputs["read"])+","+string(b), ",")
		case "pad":
			i++
			n, _ := strconv.Atoi(words[i])
			x.Stdout.Write(bytes.Repeat([]byte("x"), n))
		case "spew":
			i++
			n, _ := strconv.Atoi(words[i])
			buf := make([]byte, 64<<10)
			for j := range buf {
				buf[j] = byte(j*7 + 3)
				if buf[j] == '\n' {
					buf[j] = 0
				}
			}
			for n > 0 {
				c := min(n, len(buf))
				x.Stdout.Write(buf[:c])
				n -= c
			}
		default:
			return res, fmt.Errorf("scriptKind: unknown word %q", words[i])
		}
	}
	return res, nil
}

// sleepRecorder is a virtual clock, from the machine's time, on which
// sleeping takes no time; it records the sleeps.
type sleepRecorder struct {
	*clock.Virtual
	mu     sync.Mutex
	sleeps []time.Duration
}

func newSleepRecorder() *sleepRecorder {
	return &sleepRecorder{Virtual: clock.NewAutoAdvance(time.Now())}
}

func (c *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.Virtual.Sleep(ctx, d)
}

type staticSecrets map[string]string

func (s staticSecrets) Resolve(_ context.Context, rt *routine.Routine, _ *routine.Run) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range rt.Secrets {
		v, ok := s[r.Name]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set", r.Name)
		}
		out[r.Name] = v
	}
	return out, nil
}

type testBundle struct {
	store *sqlite.Store
	kind  *scriptKind
	clock *sleepRecorder
	dir   string
}

func setup(t *testing.T, secrets staticSecrets) (*engine.Engine, *testBundle) {
	t.Helper()
	b := newBundle(t)
	b.kind, b.clock = newScriptKind(), newSleepRecorder()
	e := engine.New(engine.Config{
		Store:    b.store,
		Kinds:    stepkind.NewRegistry(b.kind),
		StateDir: filepath.Join(b.dir, ".routines"),
		Clock:    b.clock,
		Secrets:  secrets,
	})
	return e, b
}

// newBundle returns a bundle with a project directory and its store, and
// no kinds.
func newBundle(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &testBundle{store: st, dir: dir}
}

// run parses yaml as a routine in the bundle's directory, records a run and
// executes it.
func (b *testBundle) run(t *testing.T, ctx context.Context, e *engine.Engine, yaml string) (*routine.Run, []*routine.StepRun) {
	t.Helper()
	r, err := spec.Parse("routine.yaml", []byte(yaml), b.dir)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	run, err := b.store.RunCreate(ctx, &store.RunCreateParams{
		ID: fmt.Sprintf("01TEST%020d", time.Now().UnixNano()), Routine: r.Name, Revision: r.Revision,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	run, err = e.Execute(ctx, r, run)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	stored, err := b.store.RunGet(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != run.State {
		t.Fatalf("stored state %s, returned %s", stored.State, run.State)
	}
	recs, err := b.store.StepList(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return stored, recs
}

func stepStates(recs []*routine.StepRun) string {
	var parts []string
	for _, r := range recs {
		p := ""
		if r.Phase != routine.PhaseMain {
			p = string(r.Phase) + ":"
		}
		parts = append(parts, p+r.ID+"="+string(r.State))
	}
	return strings.Join(parts, " ")
}

func TestFileOrderAndOutputs(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: order
steps:
  - id: a
    run: out greeting=hi
  - id: b
    run: say {{ steps.a.outputs.greeting }} there
  - id: c
    run: ok
`)
	if run.State != routine.StateSucceeded || run.Error != nil {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := strings.Join(b.kind.order, ","); got != "a,b,c" {
		t.Fatalf("order %s", got)
	}
	if got := stepStates(recs); got != "a=succeeded b=succeeded c=succeeded" {
		t.Fatalf("steps %s", got)
	}
	if recs[0].Outputs["greeting"] != "hi" || recs[0].Attempts != 1 || recs[0].StartedAt == nil || recs[0].FinishedAt == nil {
		t.Fatalf("record a: %+v", recs[0])
	}
	lines, err := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID, Step: "b"})
	if err != nil || len(lines) != 1 || lines[0].Text != "hi there" || lines[0].Stream != routine.StreamStdout {
		t.Fatalf("logs of b: %+v %v", lines, err)
	}
}

func TestNeedsRunInParallel(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	// a and b each wait for the other to start: only parallel execution finishes.
	run, recs := b.run(t, context.Background(), e, `
name: dag
timeout: 5s
parallelism: 4
steps:
  - id: a
    needs: []
    run: wait b
  - id: b
    needs: []
    run: wait a
  - id: c
    needs: [a, b]
    run: ok
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := b.kind.order[2]; got != "c" {
		t.Fatalf("c ran before its needs: %v", b.kind.order)
	}
	if len(recs) != 3 {
		t.Fatalf("records %d", len(recs))
	}
}

func TestIfSkipsStepButNotDependents(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: cond
steps:
  - id: a
    run: out label=billing
  - id: b
    if: steps.a.outputs.label == "sales"
    run: ok
  - id: c
    run: say b was {{ steps.b.status }}
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s %+v", run.State, run.Error)
	}
	if got := stepStates(recs); got != "a=succeeded b=skipped c=succeeded" {
		t.Fatalf("steps %s", got)
	}
	lines, _ := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID, Step: "c"})
	if len(lines) != 1 || lines[0].Text != "b was skipped" {
		t.Fatalf("logs %+v", lines)
	}
}

func TestRetryWithBackoff(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: retry
steps:
  - id: flaky
    run: flaky 2
    retry: { attempts: 3, backoff: exponential, initial: 1s, max: 1m, jitter: false }
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s %+v", run.State, run.Error)
	}
	if recs[0].Attempts != 3 {
		t.Fatalf("attempts %d", recs[0].Attempts)
	}
	if got := fmt.Sprint(b.clock.sleeps); got != "[1s 2s]" {
		t.Fatalf("sleeps %s", got)
	}
}

func TestRetriesSpentFailRunWithPayload(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: spent
steps:
  - id: a
    run: ok
  - id: ticket
    run: fail 3
    retry: { attempts: 5 }
  - id: never
    run: ok
`)
	if run.State != routine.StateFailed {
		t.Fatalf("state %s", run.State)
	}
	p := run.Error
	if p == nil || p.Code != routine.CodeStepFailed || p.Step != "ticket" || p.Attempt != 5 || p.ExitCode == nil || *p.ExitCode != 3 || p.Retryable || p.RunID != run.ID {
		t.Fatalf("payload %+v", p)
	}
	if !strings.Contains(p.StderrTail, "failing with 3") || p.Message != "exit status 3" {
		t.Fatalf("payload message %q tail %q", p.Message, p.StderrTail)
	}
	if got := stepStates(recs); got != "a=succeeded ticket=failed never=cancelled" {
		t.Fatalf("steps %s", got)
	}
	if len(b.clock.sleeps) != 4 {
		t.Fatalf("sleeps %v", b.clock.sleeps)
	}
	for i, d := range b.clock.sleeps {
		if limit := time.Second << i; d < 0 || d > limit {
			t.Fatalf("sleep %d = %s, want within [0, %s] (full jitter)", i, d, limit)
		}
	}
}

func TestCompensateInReverseThenOnFailure(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: saga
dead_letter: true
steps:
  - id: one
    run: ok
    compensate: { run: say undo one }
  - id: two
    run: ok
    compensate: { run: say undo two }
  - id: three
    run: fail 2
on_failure:
  - id: page
    run: say {{ failure.step }} failed with {{ failure.exit_code }} in {{ run.id }}
`)
	if run.State != routine.StateDead {
		t.Fatalf("state %s", run.State)
	}
	if got := strings.Join(b.kind.order, ","); got != "one,two,three,two,one,page" {
		t.Fatalf("order %s", got)
	}
	want := "one=succeeded two=succeeded three=failed compensate:two=succeeded compensate:one=succeeded on_failure:page=succeeded"
	if got := stepStates(recs); got != want {
		t.Fatalf("steps\n got %s\nwant %s", got, want)
	}
	lines, _ := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID, Step: "page"})
	if len(lines) != 1 || lines[0].Text != "three failed with 2 in "+run.ID {
		t.Fatalf("page logs %+v", lines)
	}
	if run.Error == nil || run.Error.Step != "three" {
		t.Fatalf("run error %+v", run.Error)
	}
}

func TestStepTimeout(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, _ := b.run(t, context.Background(), e, `
name: slow
steps:
  - id: hang
    run: block
    timeout: 50ms
`)
	if run.State != routine.StateFailed || run.Error.Code != routine.CodeStepTimeout || run.Error.Step != "hang" {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
}

func TestRunTimeoutStillRunsOnFailure(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: slowrun
timeout: 50ms
steps:
  - id: hang
    run: block
on_failure:
  - id: report
    run: say {{ failure.code }}
`)
	if run.State != routine.StateFailed || run.Error.Code != routine.CodeRunTimeout {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := stepStates(recs); got != "hang=failed on_failure:report=succeeded" {
		t.Fatalf("steps %s", got)
	}
}

func TestCancelRecordsCancelled(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.kind.startedCh("hang")
		cancel()
	}()
	run, recs := b.run(t, ctx, e, `
name: cancel
steps:
  - id: hang
    run: block
  - id: after
    run: ok
on_failure:
  - id: nope
    run: ok
`)
	if run.State != routine.StateCancelled || run.Error.Code != routine.CodeCancelled {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := stepStates(recs); got != "hang=cancelled after=cancelled" {
		t.Fatalf("steps %s", got)
	}
}

// A cancel someone requested (the hold's context, ended with
// scheduler.ErrCancelRequested) ends the run cancelled with that message:
// the running step is not retried, and neither compensation nor
// on_failure runs (docs/runs.md#cancelling-a-run).
func TestCancelRequestedNeitherRetriesNorCompensates(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-b.kind.startedCh("hang")
		cancel(scheduler.ErrCancelRequested)
	}()
	run, recs := b.run(t, ctx, e, `
name: cancelrequested
steps:
  - id: done
    run: ok
    compensate: { run: ok }
  - id: hang
    run: block
    retry: { attempts: 3 }
  - id: after
    run: ok
on_failure:
  - id: nope
    run: ok
`)
	if run.State != routine.StateCancelled || run.Error.Code != routine.CodeCancelled || run.Error.Message != "cancelled through the API" || run.Error.Step != "hang" {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if got := stepStates(recs); got != "done=succeeded hang=cancelled after=cancelled" {
		t.Fatalf("steps %s", got)
	}
	if recs[1].Attempts != 1 {
		t.Fatalf("the cancelled step ran %d times", recs[1].Attempts)
	}
}

func TestSecretsResolvedAndRedacted(t *testing.T) {
	t.Parallel()
	e, b := setup(t, staticSecrets{"API_TOKEN": "s3cr3t-value"})
	run, recs := b.run(t, context.Background(), e, `
name: secret
secrets: [API_TOKEN]
steps:
  - id: leak
    run: out token=s3cr3t-value say token={{API_TOKEN}}
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s %+v", run.State, run.Error)
	}
	lines, _ := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	for _, l := range lines {
		if strings.Contains(l.Text, "s3cr3t") {
			t.Fatalf("secret in log: %q", l.Text)
		}
	}
	if recs[0].Outputs["token"] != "***" {
		t.Fatalf("outputs %v", recs[0].Outputs)
	}
}

// A secret printed in pieces, across the cut of a long line, or on stderr
// is redacted in the log and in the error payload's stderr tail.
func TestSecretRedactedAcrossWrites(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value-0123456789"
	e, b := setup(t, staticSecrets{"API_TOKEN": secret})
	// The line reaches the 64 KiB cut 10 bytes into the secret, which the
	// next write completes.
	run, recs := b.run(t, context.Background(), e, fmt.Sprintf(`
name: pieces
secrets: [API_TOKEN]
steps:
  - id: leak
    run: write s3cr3t write -value-0123456789 write ; pad %d write s3cr3t-val write ue-0123456789 pad 10 write !s3cr3t- write !value-0123456789 fail 3
`, 64<<10-len("s3cr3t-value-0123456789;")-len("s3cr3t-val")))
	if run.State != routine.StateFailed {
		t.Fatalf("state %s", run.State)
	}
	lines, err := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.Text)
	}
	if strings.Contains(all.String(), "s3cr3t") || strings.Contains(all.String(), "0123456789") {
		t.Errorf("a piece of the secret is in the log")
	}
	if n := strings.Count(all.String(), "***"); n != 3 {
		t.Errorf("%d *** in the log, want 3 (pieces, across the cut, stderr)", n)
	}
	tail := recs[0].Error.StderrTail
	if strings.Contains(tail, "s3cr3t") || !strings.Contains(tail, "***") {
		t.Errorf("stderr tail %q", tail)
	}
}

// A kind's error sets the payload's code, and the wait the other system
// asked for stretches the backoff (but not past an hour).
func TestRetryAfterAndErrorCode(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, recs := b.run(t, context.Background(), e, `
name: limited
steps:
  - id: call
    retry: { attempts: 3, initial: 100ms, jitter: false }
    run: limited 2500
  - id: capped
    retry: { attempts: 3, initial: 100ms, jitter: false }
    run: limited 7200000
`)
	if run.State != routine.StateSucceeded || recs[0].Attempts != 2 || recs[1].Attempts != 2 {
		t.Fatalf("state %s, records %+v", run.State, recs)
	}
	b.clock.mu.Lock()
	sleeps := slices.Clone(b.clock.sleeps)
	b.clock.mu.Unlock()
	if !slices.Equal(sleeps, []time.Duration{2500 * time.Millisecond, 100 * time.Millisecond}) {
		t.Errorf("sleeps %v, want [2.5s (Retry-After) 100ms (an ask past an hour is not honoured)]", sleeps)
	}
	e2, b2 := setup(t, nil)
	run, recs = b2.run(t, context.Background(), e2, `
name: once
steps:
  - id: call
    run: limited 10
`)
	if run.State != routine.StateFailed || recs[0].Error.Code != routine.CodeRateLimited || recs[0].Error.RetryAfterMs != 10 {
		t.Errorf("payload %+v", recs[0].Error)
	}
}

// A secret too short to redact safely is named in a warning, not shown.
func TestShortSecretWarns(t *testing.T) {
	t.Parallel()
	e, b := setup(t, staticSecrets{"PIN": "42"})
	run, _ := b.run(t, context.Background(), e, "name: pin\nsecrets: [PIN]\nsteps:\n  - id: a\n    run: ok\n")
	lines, err := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || !strings.Contains(lines[0].Text, "secret PIN has 2 character(s)") || strings.Contains(lines[0].Text, "42") {
		t.Errorf("log %+v", lines)
	}
}

func TestMissingSecretFailsBeforeAnyStep(t *testing.T) {
	t.Parallel()
	e, b := setup(t, staticSecrets{})
	run, recs := b.run(t, context.Background(), e, `
name: nosecret
secrets: [API_TOKEN]
steps:
  - id: a
    run: ok
`)
	if run.State != routine.StateFailed || run.Error.Code != routine.CodeSecretMissing || !strings.Contains(run.Error.Message, "API_TOKEN") {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
	if len(b.kind.order) != 0 {
		t.Fatalf("steps ran: %v (records %s)", b.kind.order, stepStates(recs))
	}
}

func TestHugeBinaryOutputIsCappedAndSanitized(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, _ := b.run(t, context.Background(), e, `
name: spew
steps:
  - id: spew
    run: spew 20000000
`)
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s %+v", run.State, run.Error)
	}
	lines, err := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, l := range lines {
		total += len(l.Text)
		for _, r := range l.Text {
			if r < 0x20 && r != '\t' {
				t.Fatalf("control character %q stored", r)
			}
		}
	}
	last := lines[len(lines)-1]
	if last.Stream != routine.StreamSystem || !strings.Contains(last.Text, "output truncated") {
		t.Fatalf("last line %+v", last)
	}
	if total > 3*(16<<20) {
		t.Fatalf("stored %d bytes of text", total)
	}
}

func TestParallelismBound(t *testing.T) {
	t.Parallel()
	_, b := setup(t, nil)
	var running, peak atomic.Int32
	kind := &countingKind{running: &running, peak: &peak}
	e := engine.New(engine.Config{Store: b.store, Kinds: stepkind.NewRegistry(kind), StateDir: filepath.Join(b.dir, ".routines")})
	var yaml strings.Builder
	yaml.WriteString("name: bound\nparallelism: 3\nsteps:\n")
	for i := range 12 {
		fmt.Fprintf(&yaml, "  - id: s%d\n    needs: []\n    run: ok\n", i)
	}
	run, _ := b.run(t, context.Background(), e, yaml.String())
	if run.State != routine.StateSucceeded {
		t.Fatalf("state %s", run.State)
	}
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak parallelism %d, want 3", p)
	}
}

type countingKind struct{ running, peak *atomic.Int32 }

func (countingKind) Name() string { return "run" }

func (k *countingKind) Execute(ctx context.Context, _ *stepkind.Execution) (*stepkind.Result, error) {
	n := k.running.Add(1)
	for {
		p := k.peak.Load()
		if n <= p || k.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	k.running.Add(-1)
	return &stepkind.Result{}, nil
}

func TestWorkspaceRemovedWithoutArtifacts(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, _ := b.run(t, context.Background(), e, "name: ws\nsteps:\n  - id: a\n    run: ok\n")
	if _, err := os.Stat(e.Workspace(run.ID)); !os.IsNotExist(err) {
		t.Fatalf("empty workspace left behind: %v", err)
	}
}

func TestMultiLineAndOverlappingSecretsRedacted(t *testing.T) {
	t.Parallel()
	pem := "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----\n"
	e, b := setup(t, staticSecrets{"PEM": pem, "SHORT": "abcd", "LONG": "abcdef-SECRET", "NL": "tok-en\n"})
	run, _ := b.run(t, context.Background(), e, `
name: secrets
secrets: [PEM, SHORT, LONG, NL]
steps:
  - id: leak
    run: say {{LONG}} {{NL}} {{PEM}}
  - id: leak2
    run: err {{PEM}}
`)
	lines, _ := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.Text + "\n")
	}
	for _, frag := range []string{"SECRET", "def-", "tok-en", "MIIEvQIBADANBgkq", "hkiG9w0BAQEFAASC", "abcd"} {
		if strings.Contains(all.String(), frag) {
			t.Fatalf("%q leaked into the logs:\n%s", frag, all.String())
		}
	}
}

func TestCancelAfterRunTimeoutStopsOnFailure(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.kind.startedCh("report")
		cancel()
	}()
	done := make(chan *routine.Run)
	go func() {
		run, _ := b.run(t, ctx, e, `
name: slowfallback
timeout: 50ms
steps:
  - id: hang
    run: block
on_failure:
  - id: report
    run: block
`)
		done <- run
	}()
	select {
	case run := <-done:
		if run.State != routine.StateFailed || run.Error.Code != routine.CodeRunTimeout {
			t.Fatalf("state %s error %+v", run.State, run.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not stop on_failure after the run timeout")
	}
}

func TestCancelDuringCompensationKeepsDeadLetter(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.kind.startedCh("one")
		<-b.kind.startedCh("two")
		// "two" fails at once; its compensation of "one" blocks until
		// cancelled. Cancel only once the compensation runs (the second
		// execution of "one"): earlier, the cancel would hit "two" itself.
		for {
			b.kind.mu.Lock()
			n := b.kind.tries["one"]
			b.kind.mu.Unlock()
			if n >= 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	run, _ := b.run(t, ctx, e, `
name: sagacancel
dead_letter: true
steps:
  - id: one
    run: ok
    compensate: { run: block }
  - id: two
    run: fail 1
`)
	if run.State != routine.StateDead || run.Error.Code != routine.CodeStepFailed {
		t.Fatalf("state %s error %+v", run.State, run.Error)
	}
}

func TestEnvValuesRenderedBeforeUse(t *testing.T) {
	t.Parallel()
	e, b := setup(t, nil)
	run, _ := b.run(t, context.Background(), e, `
name: envs
env:
  WHO: "{{ routine.name }}-team"
steps:
  - id: a
    env: { GREETING: "hi {{ env.WHO }}" }
    run: say {{ env.GREETING }} / {{ env.WHO }}
`)
	lines, _ := b.store.LogList(context.Background(), &store.LogListParams{RunID: run.ID, Step: "a"})
	if run.State != routine.StateSucceeded || len(lines) != 1 || lines[0].Text != "hi envs-team / envs-team" {
		t.Fatalf("state %s %+v lines %+v", run.State, run.Error, lines)
	}
}
