package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/owner"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
)

// newRunDetail prepares a run and its steps for -o json, where empty maps
// and lists are {} and [], never null, as docs/cli.md promises. The API
// answers with the same shape (GET /v1/runs/<id>).
func newRunDetail(run *routine.Run, steps []*routine.StepRun) api.RunDetail {
	return api.NewRunDetail(run, steps)
}

// withStore opens the store of the project around the current directory.
func (g *globals) withStore(ctx context.Context, fn func(st store.Store) error) error {
	return g.withProject(ctx, func(st store.Store, _ string) error { return fn(st) })
}

// withProject is withStore, telling fn the project's directory too.
func (g *globals) withProject(ctx context.Context, fn func(st store.Store, dir string) error) error {
	p, err := g.projectFor(".")
	if err != nil {
		return err
	}
	st, err := g.openStore(ctx, p, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, p.Dir)
}

// withRun opens the project's store and finds the run arg names in it
// (resolveRun, among all runs).
func (g *globals) withRun(ctx context.Context, arg string, fn func(st store.Store, run *routine.Run) error) error {
	return g.withRunAmong(ctx, arg, &store.RunListParams{}, func(st store.Store, _ string, run *routine.Run) error { return fn(st, run) })
}

// withRunAmong is withRun where last, -1, -2 … count only the runs among
// selects, and fn is told the project's directory.
func (g *globals) withRunAmong(ctx context.Context, arg string, among *store.RunListParams, fn func(st store.Store, project string, run *routine.Run) error) error {
	return g.withProject(ctx, func(st store.Store, project string) error {
		run, err := resolveRun(ctx, st, project, arg, among)
		if err != nil {
			return err
		}
		return fn(st, project, run)
	})
}

// runReader is where the commands that read runs (runs, show, logs, dlq)
// find them: the project's store, or a server's API (remoteRuns).
type runReader interface {
	RunList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error)
	RunGet(ctx context.Context, id string) (*routine.Run, error)
	StepList(ctx context.Context, runID string) ([]*routine.StepRun, error)
	LogList(ctx context.Context, p *store.LogListParams) ([]routine.LogLine, error)
}

// withRuns calls fn with where runs are read: the server of the selected
// profile, else the project's store; where names it in messages.
func (g *globals) withRuns(ctx context.Context, fn func(rr runReader, where string) error) error {
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	if rm != nil {
		return fn(remoteRuns{g: g, rm: rm}, rm.where())
	}
	return g.withProject(ctx, func(st store.Store, dir string) error { return fn(st, dir) })
}

// runRefMark marks an argument such as -2 that Run moved out of the flag
// parser's way, which would read it as shorthand flags.
const runRefMark = "\x00"

// takesRun is the annotation of the commands whose argument names a run:
// Run marks their -1, -2 … (markRunRefs) and completion offers run ids.
const takesRun = "takes-run"

// markRunRefs marks the arguments -1, -2 … of a command that takes a run,
// so that the flag parser leaves them to the command.
func markRunRefs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.Annotations[takesRun] == "" {
		return args
	}
	out := slices.Clone(args)
	for i, a := range out {
		if _, ok := backRef(a); ok {
			out[i] = runRefMark + a
		}
	}
	return out
}

// backRef reads -N, the Nth newest run; -0 is read, to be refused.
func backRef(s string) (int, bool) {
	if len(s) < 2 || s[0] != '-' {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	return n, err == nil && s[1] != '+' && s[1] != '-'
}

// resolveRun finds the run arg names: last or -1 (the newest of the runs
// among selects), -2 (the one before) …, a run id, or a unique prefix of
// one. A miss is bad input that names the project.
func resolveRun(ctx context.Context, st runReader, project, arg string, among *store.RunListParams) (*routine.Run, error) {
	arg = strings.TrimPrefix(arg, runRefMark)
	n, back := backRef(arg)
	if arg == "last" {
		n, back = 1, true
	}
	if !back {
		return getRun(ctx, st, project, arg)
	}
	what := "run"
	if len(among.States) == 1 {
		what = string(among.States[0]) + " run"
	}
	if n < 1 {
		return nil, invalidf("%s: write last or -1 for the newest %s, -2 for the one before, or a run id", arg, what)
	}
	p := *among
	p.Limit = n
	runs, err := st.RunList(ctx, &p)
	if err != nil {
		return nil, err
	}
	if len(runs) < n {
		return nil, invalidf("%s: %s recorded in %s (routines runs lists them)", arg, count(len(runs), what), project)
	}
	return runs[n-1], nil
}

// getRun finds a run by id or unique id prefix; a miss is bad input.
func getRun(ctx context.Context, st runReader, project, id string) (*routine.Run, error) {
	run, err := st.RunGet(ctx, strings.ToUpper(id))
	var ambiguous *routine.AmbiguousIDError
	switch {
	case errors.As(err, &ambiguous):
		return nil, invalid(fmt.Errorf("%s: give more of the id", ambiguous.Error()))
	case errors.Is(err, routine.ErrNotFound):
		return nil, invalidf("no run %s in %s (routines runs lists them; last is the newest)", id, project)
	case errors.Is(err, routine.ErrConflict):
		return nil, invalidf("%s matches more than one run: give more of the id", id)
	}
	return run, err
}

func newRunsCmd(g *globals) *cobra.Command {
	var p store.RunListParams
	var state string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs of the project, newest first",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" {
				for _, s := range strings.Split(state, ",") {
					if !routine.IsRunState(routine.State(s)) {
						return invalid(fmt.Errorf("--state %s: want one of %s", s, routine.RunStateNames()))
					}
					p.States = append(p.States, routine.State(s))
				}
			}
			if p.Limit < 0 {
				return invalid(fmt.Errorf("--limit %d: must be positive", p.Limit))
			}
			return g.withRuns(cmd.Context(), func(rr runReader, where string) error {
				return g.listRuns(cmd.Context(), rr, where, &p, since)
			})
		},
	}
	cmd.Flags().StringVar(&p.Routine, "routine", "", "only runs of this routine")
	cmd.Flags().StringVar(&p.Trigger, "trigger", "", "only runs started by this kind of trigger (cron, webhook, manual, replay…)")
	cmd.Flags().StringVar(&p.Tag, "tag", "", "only runs with this tag")
	cmd.Flags().StringVar(&state, "state", "", "only runs in these states, comma-separated ("+routine.RunStateNames()+")")
	cmd.Flags().IntVar(&p.Limit, "limit", 50, "at most this many runs")
	durationVar(cmd.Flags(), &since, "since", 0, "only runs queued this recently, such as 2h or 7d (default: all)")
	return cmd
}

// listRuns prints the runs p selects, of those queued in the last since
// when it is set: a table, or a JSON array.
func (g *globals) listRuns(ctx context.Context, rr runReader, where string, p *store.RunListParams, since time.Duration) error {
	if since > 0 {
		p.Since = time.Now().Add(-since)
	}
	runs, err := rr.RunList(ctx, p)
	if err != nil {
		return err
	}
	if g.output == "json" {
		out := make([]*routine.Run, len(runs))
		for i, r := range runs {
			out[i] = api.NewRun(r)
		}
		return writeJSON(g.deps.Stdout, out)
	}
	if len(runs) == 0 {
		msg := "no runs in %s match\n"
		if p.Routine == "" && len(p.States) == 0 && p.Trigger == "" && p.Tag == "" && since == 0 {
			msg = "no runs recorded in %s yet\n"
		}
		_, err := fmt.Fprintf(g.deps.Stdout, msg, where)
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
		Use:         "show RUN",
		Short:       "Show the execution trace of a run: each step, its state, timings, outputs and error",
		Long:        "show prints a run's trace. RUN is a run id, a unique prefix of one, last (the newest run),\nor -1, -2 … (the newest, the one before …).",
		Args:        argsRange(1, 1),
		Annotations: map[string]string{takesRun: "all"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRuns(ctx, func(rr runReader, where string) error {
				run, err := resolveRun(ctx, rr, where, args[0], &store.RunListParams{})
				if err != nil {
					return err
				}
				d, err := runDetail(ctx, rr, run)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return writeJSON(g.deps.Stdout, d)
				}
				return printTrace(g, d)
			})
		},
	}
}

// detailReader is a runReader that gives a run with its steps in one go,
// and says why a queued run waits: a server (remoteRuns).
type detailReader interface {
	RunDetail(ctx context.Context, id string) (*api.RunDetail, error)
}

// runDetail returns run with its steps, and from a server why it waits.
func runDetail(ctx context.Context, rr runReader, run *routine.Run) (api.RunDetail, error) {
	if dr, ok := rr.(detailReader); ok {
		d, err := dr.RunDetail(ctx, run.ID)
		if err != nil {
			return api.RunDetail{}, err
		}
		return *d, nil
	}
	steps, err := rr.StepList(ctx, run.ID)
	if err != nil {
		return api.RunDetail{}, err
	}
	return newRunDetail(run, steps), nil
}

func printTrace(g *globals, d api.RunDetail) error {
	w, run, steps := g.deps.Stdout, d.Run, d.Steps
	fmt.Fprintf(w, "run       %s\nroutine   %s (rev %s)\nstate     %s (attempt %d)\n", run.ID, run.Routine, routine.ShortRevision(run.Revision), run.State, run.Attempt)
	if d.Waiting != "" {
		fmt.Fprintf(w, "waiting   %s\n", d.Waiting)
	}
	fmt.Fprintf(w, "trigger   %s\n", run.Trigger.Kind)
	if !run.Requires.IsZero() {
		fmt.Fprintf(w, "requires  %s\n", run.Requires)
	}
	if run.Worker != "" && run.Region != "" {
		fmt.Fprintf(w, "worker    %s (region %s)\n", run.Worker, run.Region)
	}
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
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print the stored logs of a run, each line tagged with the run id and step; -f follows a live run",
		Long: "logs prints a run's lines: time, run id, step, stream (stdout, stderr, system) and text.\n" +
			"RUN is a run id, a unique prefix of one, last (the newest run), or -1, -2 … (the newest, the one before …).\n" +
			"With -f it follows the run from the project's daemon (or the --profile's server), printing lines as its steps write them,\n" +
			"until the run ends, then exits with the run's state. A finished run needs no daemon; a run that\n" +
			"a run-once executes is followed from the store. With -o json, -f prints one JSON object a line.",
		Args:        argsRange(1, 1),
		Annotations: map[string]string{takesRun: "all"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if follow {
				return g.followLogs(ctx, args[0], step)
			}
			return g.withRuns(ctx, func(rr runReader, where string) error {
				run, err := resolveRun(ctx, rr, where, args[0], &store.RunListParams{})
				if err != nil {
					return err
				}
				lines, err := rr.LogList(ctx, &store.LogListParams{RunID: run.ID, Step: step})
				if err != nil {
					return err
				}
				if g.output == "json" {
					if lines == nil {
						lines = []routine.LogLine{}
					}
					for i := range lines {
						lines[i].TraceID = run.TraceID
					}
					return writeJSON(g.deps.Stdout, lines)
				}
				for _, l := range lines {
					printLogLine(g.deps.Stdout, l)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&step, "step", "", "only this step's lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the run until it ends, then exit with its state")
	return cmd
}

// printLogLine prints a stored line as logs does.
func printLogLine(w io.Writer, l routine.LogLine) {
	fmt.Fprintf(w, "%s %s %s %s %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000Z"), l.RunID, orDash(l.Step), l.Stream, l.Text)
}

// followLogs prints the lines of a run as they are stored, until it ends;
// the exit code follows its state. With a profile, the run is followed
// from its server. Else a finished run is read from the store; an
// unfinished one is followed from the project's daemon, or, when none
// runs, from the store as long as the process that executes it (a
// run-once) lives.
func (g *globals) followLogs(ctx context.Context, arg, step string) error {
	var end *api.RunDetail
	enc := json.NewEncoder(g.deps.Stdout)
	enc.SetEscapeHTML(false)
	emit := func(e api.Event) error {
		switch {
		case e.Line != nil && g.output == "json":
			return enc.Encode(e.Line)
		case e.Line != nil:
			printLogLine(g.deps.Stdout, *e.Line)
		case e.End != nil:
			end = e.End
		}
		return nil
	}
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	var c *client.Client // the daemon or server the run is followed from; nil: from the store
	var id string
	if rm != nil {
		run, err := resolveRun(ctx, remoteRuns{g: g, rm: rm}, rm.where(), arg, &store.RunListParams{})
		if err != nil {
			return err
		}
		c, id = rm.c, run.ID
	} else if err := g.withRunAmong(ctx, arg, &store.RunListParams{}, func(st store.Store, dir string, run *routine.Run) error {
		proj := project.Project{Dir: dir}
		if !run.State.Final() {
			dc, err := g.daemonClient("", g.getenv("ROUTINES_TOKEN"))
			if err == nil {
				c, id = dc, run.ID
				return nil
			}
			if run.State != routine.StateRunning || owner.Dir(proj.OwnersDir()).Dead(run.Worker) {
				return reword(err, "cannot follow run %s (%s): ", run.ID, run.State)
			}
		}
		return server.Follow(ctx, st, &server.FollowParams{RunID: run.ID, Step: step}, emit)
	}); err != nil {
		return err
	}
	if c != nil {
		if err := g.apiErr(c.FollowLogs(ctx, id, step, emit)); err != nil {
			return err
		}
	}
	(&liveView{stdout: g.deps.Stderr, stderr: g.deps.Stderr}).summary(end.Run)
	return runExit(end.State)
}

// reword puts prefix (a format) before err's message and keeps its exit code.
func reword(err error, prefix string, args ...any) error {
	code := ExitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	return &exitError{code: code, err: fmt.Errorf(prefix+"%w", append(args, err)...)}
}
