package routinetest_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/routinetest"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
)

var kinds = stepkind.NewRegistry(steps.RunKind{}, steps.StateKind{})

func load(t testing.TB, dir string) (*routine.Routine, []*routinetest.Case) {
	t.Helper()
	r, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := routinetest.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	return r, cases
}

// The crm-sync tests pass: retries on the virtual clock, mocks per
// attempt, rendered call arguments, a skipped branch, compensation and
// on_failure in order.
func TestCRMTestsPass(t *testing.T) {
	t.Parallel()
	r, cases := load(t, "testdata/crm")
	if len(cases) != 3 {
		t.Fatalf("%d cases, want 3", len(cases))
	}
	start := time.Now()
	results := routinetest.Run(context.Background(), r, cases, routinetest.Options{Kinds: kinds})
	for _, res := range results {
		if !res.Passed() {
			t.Errorf("%s: err %v, failures:\n%s", res.Name(), res.Err, strings.Join(res.Failures, "\n"))
		}
	}
	// Two backoffs of 30 s and more did not sleep.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the tests took %s: backoffs slept", d)
	}
	cov := routinetest.Cover(r, results)
	if got := cov.Summary(); got != "steps 5/5, if branches 2/2, retries 1/1" {
		t.Errorf("coverage %s (missed %v)", got, cov.Missed)
	}
}

// Expectations that do not hold fail with what was got and wanted, and a
// step that reaches outside without a mock fails the run, saying so.
func TestFailuresAreExplained(t *testing.T) {
	t.Parallel()
	r, _ := load(t, "testdata/crm")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, "tests", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("wrong.yaml", `
name: wrong
input: { email: Ada@Example.com }
mocks:
  ticket: { outputs: { body: T-1 } }
  notify: { outputs: { ts: "1" } }
expect:
  state: failed
  steps: { ticket: { attempts: 2 } }
  outputs: { ticket.body: T-2, normalize.nothing: x }
  calls: { notify: [ { text: { regex: "^nope" } } ] }
  order: [ticket]
`)
	write("unmocked.yaml", "name: unmocked\ninput: { email: a@b.c }\nexpect: { state: failed, error: { step: ticket, message: { contains: has no mock } } }\n")
	elsewhere := *r // the same routine, its tests in dir
	elsewhere.Dir = dir
	cases, err := routinetest.Load(&elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	results := routinetest.Run(context.Background(), r, cases, routinetest.Options{Kinds: kinds})
	byName := map[string]*routinetest.Result{}
	for _, res := range results {
		byName[res.Case.Name] = res
	}
	if res := byName["unmocked"]; !res.Passed() {
		t.Errorf("unmocked: %v %v", res.Err, res.Failures)
	}
	got := strings.Join(byName["wrong"].Failures, "\n")
	for _, want := range []string{
		"expect.state: got succeeded, want failed",
		"expect.steps.ticket.attempts: got 1, want 2",
		`expect.outputs.ticket.body: got "T-1", want "T-2"`,
		"expect.outputs.normalize.nothing: no such output (outputs: email)",
		`expect.calls.notify[0].text: got "ticket T-1", want a match of /^nope/`,
		"expect.order: got [normalize, ticket, notify], want [ticket]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("failures lack %q:\n%s", want, got)
		}
	}

	var text, junit bytes.Buffer
	suites := []*routinetest.Suite{{Results: results, Coverage: routinetest.Cover(r, results)}}
	routinetest.WriteText(&text, suites, time.Second, false)
	if !strings.Contains(text.String(), "--- FAIL: crm-sync/wrong") || !strings.Contains(text.String(), "FAIL\t2 test(s), 1 failed") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := routinetest.WriteJUnit(&junit, suites, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &doc); err != nil || len(doc.Suites) != 1 || doc.Suites[0].Tests != 2 || doc.Suites[0].Failures != 1 {
		t.Errorf("junit %v: %s", err, junit.String())
	}
}

// A test file with an unknown key or a step the routine lacks is refused
// with its position.
func TestBadTestFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests", "bad.yaml"), []byte("name: x\nexpekt: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := routinetest.Load(&routine.Routine{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") || !strings.Contains(err.Error(), "expekt") {
		t.Errorf("Load: %v", err)
	}
	r, _ := load(t, "testdata/crm")
	res := routinetest.Run(context.Background(), r, []*routinetest.Case{{Name: "x", File: "x.yaml", Input: map[string]string{"email": "a"},
		Mocks: map[string]routinetest.Mock{"nope": {}}}}, routinetest.Options{Kinds: kinds})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "mocks.nope: the routine has no step nope") {
		t.Errorf("unknown step: %v", res[0].Err)
	}
}

// Tests may also be a tests: list in routine.yaml; a problem in one is
// named by its place there.
func TestInlineTests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := `name: inline
inputs:
  who: {}
steps:
  - id: greet
    run: echo "msg=hi {{ input.who }}" >> "$ROUTINES_OUTPUT"
tests:
  - name: greets ada
    input: { who: ada }
    expect: { outputs: { greet.msg: hi ada } }
  - input: { who: bob }
    mocks:
      nope: { outputs: { a: b } }
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := routinetest.Load(r)
	if err != nil || len(cases) != 2 || cases[1].Name != "tests[1]" {
		t.Fatalf("Load = %d cases, %v", len(cases), err)
	}
	if err := routinetest.Check(r, cases); err == nil || !strings.Contains(err.Error(), "routine.yaml:13:13: mocks.nope: the routine has no step nope") {
		t.Errorf("Check: %v", err)
	}
	res := routinetest.Run(context.Background(), r, cases[:1], routinetest.Options{Kinds: kinds})
	if !res[0].Passed() {
		t.Errorf("%v %v", res[0].Err, res[0].Failures)
	}
}

// BenchmarkTenStepTests runs one test of a 10-step routine whose steps
// are mocked http calls (target: under 50 ms), then 100 such tests side
// by side (target: under 2 s on 2 cores).
func BenchmarkTenStepTests(b *testing.B) {
	dir := b.TempDir()
	var y strings.Builder
	y.WriteString("name: ten\nsteps:\n")
	for i := range 10 {
		fmt.Fprintf(&y, "  - id: s%d\n    http: { url: \"https://example.com/{{ input.n ?? '0' }}/%d\" }\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	r, err := spec.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	var cases []*routinetest.Case
	for i := range 100 {
		c := &routinetest.Case{Name: fmt.Sprint("t", i), File: "t.yaml", Mocks: map[string]routinetest.Mock{}}
		for j := range 10 {
			c.Mocks[fmt.Sprint("s", j)] = routinetest.Mock{Tries: []routinetest.Try{{Outputs: map[string]any{"status": "200"}}}}
		}
		cases = append(cases, c)
	}
	for b.Loop() {
		start := time.Now()
		one := routinetest.Run(context.Background(), r, cases[:1], routinetest.Options{Kinds: kinds})
		if !one[0].Passed() {
			b.Fatalf("%v %v", one[0].Err, one[0].Failures)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/test")
		start = time.Now()
		results := routinetest.Run(context.Background(), r, cases, routinetest.Options{Kinds: kinds})
		for _, res := range results {
			if !res.Passed() {
				b.Fatalf("%s: %v %v", res.Name(), res.Err, res.Failures)
			}
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/100tests")
	}
}

// Mocks give structured outputs as YAML or, as tests written before
// outputs had structure do, as JSON text; the routine navigates them
// either way, and an expectation matches their JSON.
func TestStructuredMocks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := `name: nav
steps:
  - id: ticket
    http: { url: https://crm.example.com/tickets }
  - id: sub
    routine: { name: other }
  - id: note
    if: steps.ticket.outputs.json.owner.team == "billing" && steps.ticket.outputs.status == "201"
    run: echo "out={{ steps.ticket.outputs.json.id }} {{ steps.sub.outputs.count }} {{ type(steps.sub.outputs.count) }} {{ steps.sub.outputs.rows[0].n + 1 }}" >> "$ROUTINES_OUTPUT"
tests:
  - name: yaml
    mocks:
      ticket: { outputs: { status: 201, json: { id: T-9, owner: { team: billing } } } }
      sub: { outputs: { count: "5", rows: [ { n: 1 } ] } }
    expect:
      outputs:
        note.out: T-9 5 string 2
        ticket.json: '{"id":"T-9","owner":{"team":"billing"}}'
        ticket.status: "201"
  - name: json text
    mocks:
      ticket: { outputs: { status: "201", json: '{"id":"T-9","owner":{"team":"billing"}}' } }
      sub: { outputs: { count: "5", rows: [ { n: 1 } ] } }
    expect:
      outputs: { note.out: T-9 5 string 2 }
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, cases := load(t, dir)
	for _, res := range routinetest.Run(context.Background(), r, cases, routinetest.Options{Kinds: kinds}) {
		if !res.Passed() {
			t.Errorf("%s: err %v, failures:\n%s", res.Name(), res.Err, strings.Join(res.Failures, "\n"))
		}
	}
}
