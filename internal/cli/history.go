package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
)

// newRunDetail prepares a run and its steps for -o json, where empty maps
// and lists are {} and [], never null, as docs/cli.md promises. The API
// answers with the same shape (GET /v1/runs/<id>).
func newRunDetail(run *routine.Run, steps []*routine.StepRun) server.RunDetail {
	return server.NewRunDetail(run, steps)
}

// jsonRun returns run with empty input and tags as {} and [].
func jsonRun(run *routine.Run) *routine.Run {
	c := *run
	if c.Input == nil {
		c.Input = map[string]string{}
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return &c
}

// withStore opens the store of the project around the current directory.
func (g *globals) withStore(ctx context.Context, fn func(st store.Store) error) error {
	project, err := g.projectFor(".")
	if err != nil {
		return err
	}
	st, err := openStore(ctx, project, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// withRun opens the project's store and finds the run id names in it.
func (g *globals) withRun(ctx context.Context, id string, fn func(st store.Store, run *routine.Run) error) error {
	return g.withStore(ctx, func(st store.Store) error {
		run, err := getRun(ctx, st, id)
		if err != nil {
			return err
		}
		return fn(st, run)
	})
}

// getRun finds a run by id or unique id prefix; a miss is bad input.
func getRun(ctx context.Context, st store.Store, id string) (*routine.Run, error) {
	run, err := st.RunGet(ctx, strings.ToUpper(id))
	var ambiguous *routine.AmbiguousIDError
	switch {
	case errors.As(err, &ambiguous):
		return nil, invalid(fmt.Errorf("%s: give more of the id", ambiguous.Error()))
	case errors.Is(err, routine.ErrNotFound):
		return nil, invalid(fmt.Errorf("no run %s in this project (list them with routines runs)", id))
	case errors.Is(err, routine.ErrConflict):
		return nil, invalid(fmt.Errorf("%s matches more than one run: give more of the id", id))
	}
	return run, err
}

func newRunsCmd(g *globals) *cobra.Command {
	var p store.RunListParams
	var state string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs of the project, newest first",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" {
				for _, s := range strings.Split(state, ",") {
					if !validState(routine.State(s)) {
						return invalid(fmt.Errorf("--state %s: want one of %s", s, statesList()))
					}
					p.States = append(p.States, routine.State(s))
				}
			}
			if p.Limit < 0 {
				return invalid(fmt.Errorf("--limit %d: must be positive", p.Limit))
			}
			return g.withStore(cmd.Context(), func(st store.Store) error {
				return g.listRuns(cmd.Context(), st, &p)
			})
		},
	}
	cmd.Flags().StringVar(&p.Routine, "routine", "", "only runs of this routine")
	cmd.Flags().StringVar(&state, "state", "", "only runs in these states, comma-separated ("+statesList()+")")
	cmd.Flags().IntVar(&p.Limit, "limit", 50, "at most this many runs")
	return cmd
}

func validState(s routine.State) bool {
	for _, v := range routine.RunStates {
		if v == s {
			return true
		}
	}
	return false
}

func statesList() string {
	names := make([]string, len(routine.RunStates))
	for i, s := range routine.RunStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// listRuns prints the runs p selects: a table, or a JSON array.
func (g *globals) listRuns(ctx context.Context, st store.Store, p *store.RunListParams) error {
	runs, err := st.RunList(ctx, p)
	if err != nil {
		return err
	}
	if g.output == "json" {
		out := make([]*routine.Run, len(runs))
		for i, r := range runs {
			out[i] = jsonRun(r)
		}
		return writeJSON(g.deps.Stdout, out)
	}
	if len(runs) == 0 {
		_, err := fmt.Fprintln(g.deps.Stdout, "no runs")
		return err
	}
	rows := [][]string{{"ID", "ROUTINE", "STATE", "TRIGGER", "QUEUED", "DURATION", "ERROR"}}
	for _, r := range runs {
		msg := ""
		if r.Error != nil {
			msg = truncate(r.Error.Message, 60)
		}
		rows = append(rows, []string{r.ID, r.Routine, string(r.State), r.Trigger.Kind, stamp(&r.QueuedAt), span(r.StartedAt, r.FinishedAt), orDash(msg)})
	}
	return table(g.deps.Stdout, rows)
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func newShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show RUN",
		Short: "Show the execution trace of a run: each step, its state, timings, outputs and error",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRun(ctx, args[0], func(st store.Store, run *routine.Run) error {
				steps, err := st.StepList(ctx, run.ID)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return writeJSON(g.deps.Stdout, newRunDetail(run, steps))
				}
				return printTrace(g, run, steps)
			})
		},
	}
}

func printTrace(g *globals, run *routine.Run, steps []*routine.StepRun) error {
	w := g.deps.Stdout
	fmt.Fprintf(w, "run       %s\nroutine   %s (rev %s)\nstate     %s (attempt %d)\ntrigger   %s\n", run.ID, run.Routine, shortRev(run.Revision), run.State, run.Attempt, run.Trigger.Kind)
	if len(run.Input) > 0 {
		fmt.Fprintf(w, "input     %s\n", formatMap(run.Input))
	}
	fmt.Fprintf(w, "queued    %s\nstarted   %s\nfinished  %s (%s)\nresources cpu %dms, max rss %d KiB\n",
		stamp(&run.QueuedAt), stamp(run.StartedAt), stamp(run.FinishedAt), span(run.StartedAt, run.FinishedAt), run.CPUUserMs+run.CPUSysMs, run.MaxRSSKB)
	if run.ReplayOf != "" {
		fmt.Fprintf(w, "replay of %s\n", run.ReplayOf)
	}
	fmt.Fprintln(w)
	rows := [][]string{{"STEP", "PHASE", "STATE", "ATTEMPTS", "EXIT", "STARTED", "DURATION", "CPU", "MAX RSS", "OUTPUTS"}}
	for _, s := range steps {
		exit := "-"
		if s.ExitCode != nil {
			exit = strconv.Itoa(*s.ExitCode)
		}
		rows = append(rows, []string{s.ID, string(s.Phase), string(s.State), strconv.Itoa(s.Attempts), exit, stamp(s.StartedAt),
			span(s.StartedAt, s.FinishedAt), fmt.Sprintf("%dms", s.CPUMs), fmt.Sprintf("%d KiB", s.MaxRSSKB), orDash(truncate(formatMap(s.Outputs), 60))})
	}
	if err := table(w, rows); err != nil {
		return err
	}
	if e := run.Error; e != nil {
		fmt.Fprintln(w, "\nerror:")
		return writeJSON(w, e)
	}
	return nil
}

// formatMap writes key=value pairs, in key order; a structured output's
// value as compact JSON.
func formatMap[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + routine.OutputText(m[k])
	}
	return strings.Join(parts, " ")
}

func newLogsCmd(g *globals) *cobra.Command {
	var step string
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print the stored logs of a run, each line tagged with the run id and step",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRun(ctx, args[0], func(st store.Store, run *routine.Run) error {
				lines, err := st.LogList(ctx, &store.LogListParams{RunID: run.ID, Step: step})
				if err != nil {
					return err
				}
				if g.output == "json" {
					if lines == nil {
						lines = []routine.LogLine{}
					}
					return writeJSON(g.deps.Stdout, lines)
				}
				for _, l := range lines {
					fmt.Fprintf(g.deps.Stdout, "%s %s %s %s %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000Z"), l.RunID, orDash(l.Step), l.Stream, l.Text)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "only this step's lines")
	return cmd
}
