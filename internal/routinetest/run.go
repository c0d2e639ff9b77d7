package routinetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/template"
)

// External are the step kinds that reach outside the machine: a test must
// mock each of their steps, or the step fails.
var External = []string{"http", "slack", "email", "llm", "agent", "emit", "routine"}

// Options say how tests run.
type Options struct {
	Kinds    stepkind.Registry // the real step kinds
	Filter   *regexp.Regexp    // only the tests whose "<routine>/<name>" it matches; all when nil
	Parallel int               // tests at once; GOMAXPROCS × 2 when 0
	// Unconfined runs run steps without Landlock (the kernel lacks it and
	// the user allowed it).
	Unconfined bool
}

// Result is how one test went.
type Result struct {
	Routine  *routine.Routine
	Case     *Case
	Failures []string // expectations not met; none when it passed
	Err      error    // the test could not run (setup, store)
	Duration time.Duration
	Run      *routine.Run
	Steps    []*routine.StepRun
	Calls    []Call // every execution of a step, in start order
}

// Passed reports whether the test ran and met every expectation.
func (r *Result) Passed() bool { return r.Err == nil && len(r.Failures) == 0 }

// Name is "<routine>/<test name>".
func (r *Result) Name() string { return r.Routine.Name + "/" + r.Case.Name }

// Call is one execution (attempt) of a step: its key (the step id, or
// compensate:<id>), kind, whether it was mocked, and its rendered fields.
type Call struct {
	Step   string
	Kind   string
	Mocked bool
	Fields map[string]string
}

// Run runs the cases of routine r, side by side, and returns their
// results in the cases' order.
func Run(ctx context.Context, r *routine.Routine, cases []*Case, opts Options) []*Result {
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0) * 2
	}
	var (
		results []*Result
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallel)
	)
	for _, c := range cases {
		res := &Result{Routine: r, Case: c}
		if opts.Filter != nil && !opts.Filter.MatchString(res.Name()) {
			continue
		}
		results = append(results, res)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			res.Err = runCase(ctx, r, c, opts, res)
			res.Duration = time.Since(start)
		}()
	}
	wg.Wait()
	return results
}

// runCase runs one test in a temporary copy of the routine's directory,
// with a store of its own, and checks its expectations.
func runCase(ctx context.Context, r *routine.Routine, c *Case, opts Options, res *Result) error {
	tmp, err := os.MkdirTemp("", "routines-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "routine")
	if err := copyDir(r.Dir, dir); err != nil {
		return fmt.Errorf("copy the routine directory: %w", err)
	}
	copied, err := spec.Load(filepath.Join(dir, filepath.Base(r.File)))
	if err != nil {
		return err
	}
	if err := c.check(copied); err != nil {
		return err
	}
	st, err := sqlite.OpenScratch(ctx, filepath.Join(tmp, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	rec := &recorder{c: c, real: opts.Kinds}
	// Sleeping (a retry's backoff) moves the test's clock on at once.
	clk := clock.NewAutoAdvance(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	eng := engine.New(engine.Config{
		Store:      st,
		Kinds:      rec.registry(),
		StateDir:   filepath.Join(tmp, ".routines"),
		Clock:      clk,
		Secrets:    caseSecrets(c.Secrets),
		Unconfined: opts.Unconfined,
	})
	payload, err := json.Marshal(c.Event)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if c.Event == nil {
		payload = nil
	}
	run, _, err := scheduler.NewQueue(st, clk, nil).Enqueue(ctx, &scheduler.Request{
		Routine: copied, Trigger: routine.TriggerInfo{Kind: "test", Payload: payload}, Input: c.Input,
		Running: true,
	})
	if err != nil {
		return err
	}
	if res.Run, err = eng.Execute(ctx, copied, run); err != nil {
		return err
	}
	if res.Steps, err = st.StepList(ctx, run.ID); err != nil {
		return err
	}
	res.Calls = rec.calls()
	res.Failures = c.Expect.check(res)
	return nil
}

// Check returns the problems of cases against routine r (steps the
// routine does not have, inputs it does not declare), before they run.
func Check(r *routine.Routine, cases []*Case) error {
	var errs []error
	for _, c := range cases {
		errs = append(errs, c.check(r))
	}
	return errors.Join(errs...)
}

// check refuses a test that names steps the routine does not have, or
// gives inputs it does not declare; each problem names its place in the
// test file.
func (c *Case) check(r *routine.Routine) error {
	keys := stepKeys(r)
	var errs []error
	for id := range c.Mocks {
		if !keys[id] {
			errs = append(errs, c.problem("mocks."+id, "mocks.%s: the routine has no step %s", id, id))
		}
	}
	for id := range c.Expect.Steps {
		if !keys[id] {
			errs = append(errs, c.problem("expect.steps."+id, "expect.steps.%s: the routine has no step %s", id, id))
		}
	}
	if err := r.CheckInput(c.Input); err != nil {
		errs = append(errs, c.problem("input", "input: %v", err))
	}
	return errors.Join(errs...)
}

// problem is an error at path (such as "mocks.ticket") of the test in its
// file, as file:line:col when the place can be found.
func (c *Case) problem(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if pos := c.position(path); pos != "" {
		return fmt.Errorf("%s:%s: %s", c.File, pos, msg)
	}
	return fmt.Errorf("%s: %s", c.File, msg)
}

// position returns "line:col" of path in the test's file, or "".
func (c *Case) position(path string) string {
	data, err := os.ReadFile(c.File)
	if err != nil {
		return ""
	}
	root := c.root
	if root == "" {
		root = "$"
	}
	p, err := yaml.PathString(root + "." + path)
	if err != nil {
		return ""
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return ""
	}
	node, err := p.FilterFile(file)
	if err != nil || node == nil {
		// The key itself, when its value is empty.
		return ""
	}
	tok := node.GetToken()
	return fmt.Sprintf("%d:%d", tok.Position.Line, tok.Position.Column)
}

// stepKeys lists the keys a test names steps by: main and on_failure ids,
// and compensate:<id> for each compensation.
func stepKeys(r *routine.Routine) map[string]bool {
	keys := map[string]bool{}
	for _, s := range r.Steps {
		keys[s.ID] = true
		if s.Compensate != nil {
			keys["compensate:"+s.ID] = true
		}
	}
	for _, s := range r.OnFailure {
		keys[s.ID] = true
	}
	return keys
}

func stepKey(phase routine.Phase, id string) string {
	if phase == routine.PhaseCompensate {
		return "compensate:" + id
	}
	return id
}

// recorder runs the steps of one test: mocked ones from the test, the
// others with the real kinds (but external ones, which fail), recording
// every execution.
type recorder struct {
	c    *Case
	real stepkind.Registry

	mu    sync.Mutex
	log   []Call
	tries map[string]int
}

func (rec *recorder) registry() stepkind.Registry {
	reg := stepkind.Registry{}
	for name := range rec.real {
		reg[name] = &mockKind{name: name, rec: rec}
	}
	for _, name := range External {
		reg[name] = &mockKind{name: name, rec: rec}
	}
	return reg
}

func (rec *recorder) calls() []Call {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Call(nil), rec.log...)
}

// mockKind stands for one step kind in a test.
type mockKind struct {
	name string
	rec  *recorder
}

func (k *mockKind) Name() string { return k.name }

func (k *mockKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	key := stepKey(x.Phase, x.StepID)
	mock, mocked := k.rec.c.Mocks[key]
	call := Call{Step: key, Kind: k.name, Mocked: mocked, Fields: fields(k.name, x)}
	k.rec.mu.Lock()
	k.rec.log = append(k.rec.log, call)
	if k.rec.tries == nil {
		k.rec.tries = map[string]int{}
	}
	k.rec.tries[key]++
	n := k.rec.tries[key]
	k.rec.mu.Unlock()
	if mocked {
		return mock.try(n, k.name)
	}
	if real, ok := k.rec.real[k.name]; ok && !isExternal(k.name) {
		return real.Execute(ctx, x)
	}
	return nil, stepkind.Fail("", false, fmt.Errorf("step %s (%s) reaches outside and has no mock: add mocks.%s to the test", key, k.name, key))
}

// try returns the result of attempt n of a step of kind: its try, or the
// last one.
func (m Mock) try(n int, kind string) (*stepkind.Result, error) {
	if len(m.Tries) == 0 {
		return &stepkind.Result{Outputs: routine.Outputs{}}, nil
	}
	t := m.Tries[min(n, len(m.Tries))-1]
	out, err := mockOutputs(t.Outputs, routine.StepOutputs(kind))
	if err != nil {
		return nil, stepkind.Fail("", false, err)
	}
	if t.Fail == nil {
		return &stepkind.Result{Outputs: out}, nil
	}
	retryable := t.Fail.Retryable == nil || *t.Fail.Retryable
	return &stepkind.Result{Outputs: out}, stepkind.Fail(t.Fail.Code, retryable, errors.New(t.Fail.Message))
}

func isExternal(kind string) bool {
	for _, k := range External {
		if k == kind {
			return true
		}
	}
	return false
}

// fields returns the rendered strings of an action, by path within its
// kind ("json.subject" for http.json.subject; "run" for a run step, with
// the values of its {{ }} as ROUTINES_T1, ROUTINES_T2 …).
func fields(kind string, x *stepkind.Execution) map[string]string {
	out := map[string]string{}
	template.MapStrings(*x.Action, func(path, s string) (string, error) {
		if s != "" {
			out[strings.TrimPrefix(path, kind+".")] = s
		}
		return s, nil
	})
	for k, v := range x.Env {
		if strings.HasPrefix(k, template.RunVarPrefix) && kind == "run" {
			out[k] = v
		}
	}
	return out
}

// caseSecrets are the secrets of a test: the values it gives, and
// test-<NAME> for any other declared secret.
type caseSecrets map[string]string

func (s caseSecrets) Resolve(_ context.Context, rt *routine.Routine, _ *routine.Run) (map[string]string, error) {
	out := make(map[string]string, len(rt.Secrets))
	for _, ref := range rt.Secrets {
		v, ok := s[ref.Name]
		if !ok {
			v = "test-" + ref.Name
		}
		out[ref.Name] = v
	}
	return out, nil
}

// copyDir copies the routine directory for a test: its files, but not
// its .routines, tests, .git or node_modules.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			switch d.Name() {
			case ".routines", "tests", ".git", "node_modules":
				if rel != "." {
					return filepath.SkipDir
				}
			}
			return os.MkdirAll(target, 0o755)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mockOutputs turns the outputs of a mock into what a step of the kind
// whose outputs are shaped so produces: text where the kind gives text
// (status: 201 is "201"), and elsewhere the values routine.DecodeJSON
// gives. A structured output the kind always has (an http step's json)
// may be written as JSON text, as tests written before outputs had
// structure write it.
func mockOutputs(in map[string]any, shape *routine.Shape) (routine.Outputs, error) {
	out := make(routine.Outputs, len(in))
	for k, v := range in {
		s, isText := v.(string)
		_, always := shape.Fields[k]
		switch field := shape.Field(k); {
		case field != nil && field.Type == routine.ShapeString:
			out[k] = routine.OutputText(v)
		case isText:
			out[k] = v
			if decoded, err := routine.DecodeJSON([]byte(s)); err == nil && always {
				out[k] = decoded
			}
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("mock output %s: %w", k, err)
			}
			if out[k], err = routine.DecodeJSON(b); err != nil {
				return nil, fmt.Errorf("mock output %s: %w", k, err)
			}
		}
	}
	return out, nil
}
