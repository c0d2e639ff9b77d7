package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/routinetest"
	"github.com/routines-dev/routines/internal/store"
)

func newTestCmd(g *globals) *cobra.Command {
	var (
		pattern         string
		verbose         bool
		allowUnconfined bool
		record          string
	)
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the tests of the routines under DIR (tests/*.yaml next to each routine.yaml)",
		Long: "test runs each routine's tests/*.yaml: a trigger event or input, mocks for the steps that reach outside,\n" +
			"and expectations about the run. Runs use the real engine on a virtual clock (backoffs do not sleep),\n" +
			"real run, state and sql steps in a copy of the routine directory, and a store of their own.\n" +
			"-o json or -o junit for machines. Docs: " + docsURL + "/testing.md",
		RunE: func(cmd *cobra.Command, args []string) error {
			if record != "" {
				return g.recordTest(cmd.Context(), record)
			}
			var filter *regexp.Regexp
			if pattern != "" {
				var err error
				if filter, err = regexp.Compile(pattern); err != nil {
					return invalidf("-run %q: %v", pattern, err)
				}
			}
			return g.runTests(cmd.Context(), args, filter, verbose, allowUnconfined)
		},
	}
	cmd.Flags().StringVar(&pattern, "run", "", "only the tests whose routine/name matches this regular expression (-run works too, as in go test)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests and what the coverage missed")
	cmd.Flags().BoolVar(&allowUnconfined, "allow-unconfined", false, "run run steps without Landlock when the kernel does not offer it")
	cmd.Flags().StringVar(&record, "record", "", "print a test made from the past run RUN (its input, event, what outside steps returned, what it produced)")
	return cmd
}

// recordTest prints a test made from a past run of the project.
func (g *globals) recordTest(ctx context.Context, id string) error {
	return g.withRun(ctx, id, func(st store.Store, run *routine.Run) error {
		r, _, err := g.loadByName(run.Routine)
		if err != nil {
			return err
		}
		recs, err := st.StepList(ctx, run.ID)
		if err != nil {
			return err
		}
		if run.Revision != r.Revision {
			fmt.Fprintf(g.deps.Stderr, "note: %s changed since run %s (rev %s → %s); check the recorded test against the current file\n", r.Name, run.ID, routine.ShortRevision(run.Revision), routine.ShortRevision(r.Revision))
		}
		fmt.Fprintf(g.deps.Stdout, "# A test of %s recorded from run %s: save it as %s/tests/<name>.yaml.\n", r.Name, run.ID, r.Dir)
		return routinetest.WriteYAML(g.deps.Stdout, []*routinetest.Case{routinetest.Record(r, run, recs)})
	})
}

func (g *globals) runTests(ctx context.Context, dirs []string, filter *regexp.Regexp, verbose, allowUnconfined bool) error {
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	start := time.Now()
	var (
		ready  []*routineTests
		broken []routinetest.Invalid
	)
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			return invalidf("%s: %v", dir, err)
		}
		err := project.Walk(dir, project.WalkOptions{}, func(path string) error {
			rt, err := g.loadTests(path, allowUnconfined)
			switch {
			case err != nil:
				broken = append(broken, routinetest.Invalid{File: path, Err: err})
			case rt != nil:
				ready = append(ready, rt)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(broken) > 0 {
		// Nothing is run, but CI reads the report, not stderr: it gets
		// one naming each invalid routine.
		if err := writeTestReport(g.output, g.deps.Stdout, nil, broken); err != nil {
			return err
		}
		problems := make([]error, len(broken))
		for i, inv := range broken {
			problems[i] = inv.Err
		}
		return invalid(errors.Join(problems...))
	}
	var suites []*routinetest.Suite
	for _, rt := range ready {
		results := routinetest.Run(ctx, rt.routine, rt.cases, routinetest.Options{Kinds: g.deps.Kinds, Filter: filter, Unconfined: rt.unconfined})
		suites = append(suites, &routinetest.Suite{Results: results, Coverage: routinetest.Cover(rt.routine, results)})
	}
	machine := g.output == "json" || g.output == "junit"
	if len(suites) == 0 {
		// A report redirected to a file stays a report: the note goes
		// to stderr.
		note := g.deps.Stdout
		if machine {
			note = g.deps.Stderr
		}
		fmt.Fprintln(note, "no tests: write tests/*.yaml next to a routine.yaml (docs/testing.md)")
	}
	if machine {
		if err := writeTestReport(g.output, g.deps.Stdout, suites, nil); err != nil {
			return err
		}
	} else if len(suites) > 0 {
		routinetest.WriteText(g.deps.Stdout, suites, time.Since(start), verbose)
	}
	if routinetest.Failed(suites) > 0 {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}

// routineTests are a routine and its tests, checked and ready to run.
type routineTests struct {
	routine    *routine.Routine
	cases      []*routinetest.Case
	unconfined bool
}

// loadTests loads the routine at path and its tests. A routine without
// tests gives nil; an error means the routine or a test file is invalid,
// or its run steps cannot be confined.
func (g *globals) loadTests(path string, allowUnconfined bool) (*routineTests, error) {
	r, err := g.load(path)
	if err != nil {
		return nil, err
	}
	cases, err := routinetest.Load(r)
	if err != nil {
		return nil, err
	}
	if len(cases) == 0 {
		return nil, nil
	}
	if err := routinetest.Check(r, cases); err != nil {
		return nil, err
	}
	unconfined, err := g.confinement(r, allowUnconfined)
	if err != nil {
		return nil, err
	}
	return &routineTests{routine: r, cases: cases, unconfined: unconfined}, nil
}

// writeTestReport prints the machine report -o asks for: json or junit.
// With text output it prints nothing: invalid routines go to stderr.
func writeTestReport(output string, w io.Writer, suites []*routinetest.Suite, invalid []routinetest.Invalid) error {
	switch output {
	case "json":
		return routinetest.WriteJSON(w, suites, invalid)
	case "junit":
		return routinetest.WriteJUnit(w, suites, invalid)
	}
	return nil
}
