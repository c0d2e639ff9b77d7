package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

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
			fmt.Fprintf(g.deps.Stderr, "note: %s changed since run %s (rev %s → %s); check the recorded test against the current file\n", r.Name, run.ID, shortRev(run.Revision), shortRev(r.Revision))
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
		suites   []*routinetest.Suite
		problems []error
	)
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			return invalidf("%s: %v", dir, err)
		}
		err := walkRoutineFiles(dir, func(path string) error {
			r, err := g.load(path)
			if err != nil {
				problems = append(problems, err)
				return nil
			}
			cases, err := routinetest.Load(r)
			if err != nil {
				problems = append(problems, err)
				return nil
			}
			if len(cases) == 0 {
				return nil
			}
			if err := routinetest.Check(r, cases); err != nil {
				problems = append(problems, err)
				return nil
			}
			unconfined, err := g.confinement(r, allowUnconfined)
			if err != nil {
				problems = append(problems, err)
				return nil
			}
			results := routinetest.Run(ctx, r, cases, routinetest.Options{Kinds: g.deps.Kinds, Filter: filter, Unconfined: unconfined})
			suites = append(suites, &routinetest.Suite{Results: results, Coverage: routinetest.Cover(r, results)})
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return invalid(errors.Join(problems...))
	}
	if len(suites) == 0 {
		fmt.Fprintln(g.deps.Stdout, "no tests: write tests/*.yaml next to a routine.yaml (docs/testing.md)")
		return nil
	}
	var err error
	switch g.output {
	case "json":
		err = routinetest.WriteJSON(g.deps.Stdout, suites)
	case "junit":
		err = routinetest.WriteJUnit(g.deps.Stdout, suites)
	default:
		routinetest.WriteText(g.deps.Stdout, suites, time.Since(start), verbose)
	}
	if err != nil {
		return err
	}
	if routinetest.Failed(suites) > 0 {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}
