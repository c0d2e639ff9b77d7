package cli_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

// routines test runs the tests of the routines under a directory: go-test
// style output, -run, -o json and junit, and its exit codes.
func TestRoutinesTest(t *testing.T) {
	t.Parallel()
	dir := clitest.CopyProject(t, "../routinetest/testdata/crm")
	run := func(args ...string) (int, string, string) {
		return clitest.RunCLIWith(t, cli.Deps{}, append([]string{"test", dir}, args...)...)
	}
	code, out, errOut := run()
	if code != 0 || !strings.Contains(out, "coverage of crm-sync: steps 5/5, if branches 2/2, retries 1/1") || !strings.Contains(out, "ok\t3 test(s), 0 failed") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	code, out, _ = run("-run", "quiet", "-v")
	if code != 0 || !strings.Contains(out, "--- PASS: crm-sync/quiet address skips the note") || !strings.Contains(out, "1 test(s)") {
		t.Errorf("-run: exit %d\n%s", code, out)
	}
	code, out, _ = run("-o", "json")
	var doc struct {
		Tests []struct {
			Name   string `json:"name"`
			Passed bool   `json:"passed"`
		} `json:"tests"`
		Failed int `json:"failed"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || len(doc.Tests) != 3 || doc.Failed != 0 {
		t.Errorf("-o json: exit %d %v\n%s", code, err, out)
	}

	// A failing test: exit 1, the JUnit report says which.
	bad := filepath.Join(dir, "tests", "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: wrong state\ninput: { email: a@b.c }\nmocks: { ticket: { outputs: { body: T } }, notify: {} }\nexpect: { state: failed }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("-o", "junit")
	var junit struct {
		Suites []struct {
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &junit); code != 1 || err != nil || len(junit.Suites) != 1 || junit.Suites[0].Failures != 1 {
		t.Fatalf("junit: exit %d %v\n%s", code, err, out)
	}
	// An invalid test file: exit 2, with its position.
	if err := os.WriteFile(bad, []byte("name: x\ninput: { email: a@b.c }\nmocks:\n  nope: { outputs: { a: b } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run()
	if code != 2 || !strings.Contains(errOut, "bad.yaml:4:9: mocks.nope: the routine has no step nope") {
		t.Errorf("invalid test file: exit %d %s", code, errOut)
	}
	if code, _, errOut := run("-o", "xml"); code != 2 || !strings.Contains(errOut, "-o xml") {
		t.Errorf("-o xml: exit %d %s", code, errOut)
	}
}

// A past run becomes a test: --record prints it, and it passes against
// the routine with the outside replaced by what the run got.
func TestRecordATest(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"T-42"}`)
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	yaml := "name: recorder\ninputs:\n  who: {}\nsteps:\n" +
		"  - id: greet\n    run: echo \"msg=hello {{ input.who }}\" >> \"$ROUTINES_OUTPUT\"\n" +
		"  - id: ticket\n    http: { method: POST, url: \"" + api.URL + "/tickets\", json: { text: \"{{ steps.greet.outputs.msg }}\" } }\n"
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := clitest.RunCLIWith(t, cli.Deps{}, "--project", dir, "run-once", dir, "--input", "who=ada", "-o", "json")
	var run struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &run); code != 0 || err != nil {
		t.Fatalf("run-once: exit %d %v %s", code, err, errOut)
	}
	api.Close() // the recorded test must not need the API
	code, out, errOut = clitest.RunCLIWith(t, cli.Deps{}, "--project", dir, "test", "--record", run.ID)
	if code != 0 || !strings.Contains(out, "ticket.json: '{\"id\":\"T-42\"}'") && !strings.Contains(out, `T-42`) {
		t.Fatalf("--record: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests", "recorded.yaml"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = clitest.RunCLIWith(t, cli.Deps{}, "test", dir, "-v")
	if code != 0 || !strings.Contains(out, "--- PASS: recorder/recorded from run "+run.ID) {
		t.Fatalf("the recorded test: exit %d\n%s%s", code, out, errOut)
	}
}

// The routine init makes comes with a test, and it passes.
func TestInitScaffoldTestPasses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "morning")
	if code, _, errOut := clitest.RunCLI(t, "init", dir); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	code, out, errOut := clitest.RunCLI(t, "test", dir, "-v")
	if code != 0 || !strings.Contains(out, "--- PASS: morning/done reports what greet said") {
		t.Fatalf("test: exit %d\n%s%s", code, out, errOut)
	}
}

// An invalid routine under the directory: nothing runs, exit 2, and the
// machine reports say which file is wrong, where, so CI shows it.
func TestInvalidRoutineInTheTestReports(t *testing.T) {
	t.Parallel()
	dir := clitest.CopyProject(t, "../routinetest/testdata/crm")
	broken := filepath.Join(dir, "broken", "routine.yaml")
	if err := os.MkdirAll(filepath.Dir(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("# a template\nname: {{NAME}}\nsteps:\n  - id: a\n    run: echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	where := broken + ":2:8: invalid YAML"

	code, out, errOut := clitest.RunCLI(t, "test", dir, "-o", "junit")
	var junit struct {
		Suites []struct {
			Name   string `xml:"name,attr"`
			Tests  int    `xml:"tests,attr"`
			Errors int    `xml:"errors,attr"`
			Cases  []struct {
				File  string `xml:"file,attr"`
				Error *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &junit); code != 2 || err != nil || len(junit.Suites) != 1 {
		t.Fatalf("junit: exit %d %v\n%s%s", code, err, out, errOut)
	}
	s := junit.Suites[0]
	if s.Name != broken || s.Tests != 1 || s.Errors != 1 || len(s.Cases) != 1 || s.Cases[0].File != broken ||
		s.Cases[0].Error == nil || !strings.HasPrefix(s.Cases[0].Error.Message, where) || !strings.Contains(s.Cases[0].Error.Text, "name: {{NAME}}") {
		t.Errorf("junit suite of the invalid routine: %+v\n%s", s, out)
	}
	if !strings.Contains(errOut, where) || !strings.Contains(errOut, "nothing was run") {
		t.Errorf("stderr: %s", errOut)
	}

	code, out, _ = clitest.RunCLI(t, "test", dir, "-o", "json")
	var doc struct {
		Invalid []struct {
			File  string `json:"file"`
			Error string `json:"error"`
		} `json:"invalid"`
		Tests []any `json:"tests"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 2 || err != nil || len(doc.Invalid) != 1 || doc.Invalid[0].File != broken ||
		!strings.HasPrefix(doc.Invalid[0].Error, where) || len(doc.Tests) != 0 {
		t.Errorf("json: exit %d %v\n%s", code, err, out)
	}

	// A directory without tests still gives a report, and the note goes
	// to stderr.
	code, out, errOut = clitest.RunCLI(t, "test", filepath.Join(dir, "tests"), "-o", "junit")
	var empty struct {
		XMLName xml.Name
		Suites  []struct{} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &empty); code != 0 || err != nil || empty.XMLName.Local != "testsuites" || len(empty.Suites) != 0 || !strings.Contains(errOut, "no tests") {
		t.Errorf("junit without tests: exit %d %v\n%s%s", code, err, out, errOut)
	}
}
