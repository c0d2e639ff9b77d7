package routinetest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Suite is the results of the tests of one routine, with their coverage.
type Suite struct {
	Results  []*Result
	Coverage *Coverage
}

// Invalid is a routine whose file or tests could not be loaded, so none of
// its tests ran. The machine reports carry it so that CI, which reads them
// rather than stderr, shows why nothing passed.
type Invalid struct {
	// File is the routine file.
	File string
	// Err is every problem, each named by file:line:col where it has a
	// position.
	Err error
}

// Failed counts the tests that did not pass.
func Failed(suites []*Suite) int {
	n := 0
	for _, s := range suites {
		for _, r := range s.Results {
			if !r.Passed() {
				n++
			}
		}
	}
	return n
}

// WriteText prints the results as go test does: a line per test, the
// failures under a failed one, a coverage line per routine, and a summary.
func WriteText(w io.Writer, suites []*Suite, elapsed time.Duration, verbose bool) {
	total := 0
	for _, s := range suites {
		for _, r := range s.Results {
			total++
			switch {
			case r.Err != nil:
				fmt.Fprintf(w, "--- ERROR: %s (%s)\n    %s\n", r.Name(), round(r.Duration), indent(r.Err.Error()))
			case !r.Passed():
				fmt.Fprintf(w, "--- FAIL: %s (%s)\n", r.Name(), round(r.Duration))
				for _, f := range r.Failures {
					fmt.Fprintf(w, "    %s\n", indent(f))
				}
			case verbose:
				fmt.Fprintf(w, "--- PASS: %s (%s)\n", r.Name(), round(r.Duration))
			}
		}
		if len(s.Results) > 0 {
			fmt.Fprintf(w, "coverage of %s: %s\n", s.Results[0].Routine.Name, s.Coverage.Summary())
			if m := s.Coverage.missed(); m != "" && verbose {
				fmt.Fprintf(w, "    %s\n", m)
			}
		}
	}
	failed := Failed(suites)
	status := "ok"
	if failed > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%s\t%d test(s), %d failed\t%s\n", status, total, failed, round(elapsed))
}

func round(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

// jsonResult is one test in -o json.
type jsonResult struct {
	Routine    string   `json:"routine"`
	Name       string   `json:"name"`
	File       string   `json:"file"`
	Passed     bool     `json:"passed"`
	Failures   []string `json:"failures,omitempty"`
	Error      string   `json:"error,omitempty"`
	DurationMs float64  `json:"duration_ms"`
	RunState   string   `json:"run_state,omitempty"`
}

// jsonInvalid is an Invalid in -o json.
type jsonInvalid struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// WriteJSON prints the results and coverage as one JSON document, with
// the routines that could not be loaded under "invalid".
func WriteJSON(w io.Writer, suites []*Suite, invalid []Invalid) error {
	type cov struct {
		Routine string `json:"routine"`
		*Coverage
	}
	out := struct {
		Invalid  []jsonInvalid `json:"invalid"`
		Tests    []jsonResult  `json:"tests"`
		Coverage []cov         `json:"coverage"`
		Failed   int           `json:"failed"`
	}{Invalid: []jsonInvalid{}, Tests: []jsonResult{}, Coverage: []cov{}, Failed: Failed(suites)}
	for _, inv := range invalid {
		out.Invalid = append(out.Invalid, jsonInvalid{File: inv.File, Error: inv.Err.Error()})
	}
	for _, s := range suites {
		for _, r := range s.Results {
			j := jsonResult{Routine: r.Routine.Name, Name: r.Case.Name, File: r.Case.File, Passed: r.Passed(),
				Failures: r.Failures, DurationMs: float64(r.Duration.Microseconds()) / 1000}
			if r.Err != nil {
				j.Error = r.Err.Error()
			}
			if r.Run != nil {
				j.RunState = string(r.Run.State)
			}
			out.Tests = append(out.Tests, j)
		}
		if len(s.Results) > 0 {
			out.Coverage = append(out.Coverage, cov{Routine: s.Results[0].Routine.Name, Coverage: s.Coverage})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// JUnit XML, as CI systems read it: a testsuite per routine.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit prints the results as JUnit XML. Each invalid routine comes
// first, as a testsuite named after its file holding one errored
// testcase whose message is the first problem (file:line:col: message).
func WriteJUnit(w io.Writer, suites []*Suite, invalid []Invalid) error {
	var doc junitSuites
	for _, inv := range invalid {
		text := inv.Err.Error()
		first, _, _ := strings.Cut(text, "\n")
		doc.Suites = append(doc.Suites, junitSuite{Name: inv.File, Tests: 1, Errors: 1, Time: "0.000", Cases: []junitCase{{
			Name: "load the routine and its tests", Classname: inv.File, File: inv.File, Time: "0.000",
			Error: &junitProblem{Message: first, Text: text},
		}}})
	}
	for _, s := range suites {
		if len(s.Results) == 0 {
			continue
		}
		js := junitSuite{Name: s.Results[0].Routine.Name}
		var total time.Duration
		for _, r := range s.Results {
			total += r.Duration
			jc := junitCase{Name: r.Case.Name, Classname: r.Routine.Name, File: r.Case.File, Time: fmt.Sprintf("%.3f", r.Duration.Seconds())}
			switch {
			case r.Err != nil:
				js.Errors++
				jc.Error = &junitProblem{Message: "the test could not run", Text: r.Err.Error()}
			case !r.Passed():
				js.Failures++
				jc.Failure = &junitProblem{Message: r.Failures[0], Text: strings.Join(r.Failures, "\n")}
			}
			js.Cases = append(js.Cases, jc)
		}
		js.Tests, js.Time = len(s.Results), fmt.Sprintf("%.3f", total.Seconds())
		doc.Suites = append(doc.Suites, js)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
