package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/retention"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func newPruneCmd(g *globals) *cobra.Command {
	var o retention.Options
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete the runs, logs, artifacts and audit records the project's retention lets go",
		Long: "prune applies the retention: of routines.project.yaml (else the defaults: runs and artifacts\n" +
			"30 days, logs 7 days, audit a year) to the project's store now, as the daemon does every minute,\n" +
			"and gives the space back to the file system. It runs beside a daemon: it is one more writer, in\n" +
			"short batches. Dead runs are kept until replayed, or until --dead-letters deletes them all.\n" +
			"A store made before incremental vacuum is rewritten once (a full VACUUM) when no daemon runs.\n" +
			"Docs: " + docsURL + "/operations.md#retention",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.prune(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "count what would be deleted, and delete nothing")
	cmd.Flags().BoolVar(&o.DeadLetters, "dead-letters", false, "also delete every dead run (the dead-letter queue), replayed or not, whatever its age")
	return cmd
}

// pruneOutput is what prune prints with -o json.
type pruneOutput struct {
	Project string `json:"project"`
	// Config is the project's file, "" when the defaults apply.
	Config string           `json:"config,omitempty"`
	Policy retention.Policy `json:"policy"`
	*retention.Report
	// DeadKept are the dead runs left, kept until replayed.
	DeadKept int `json:"dead_letters_kept"`
	// The size of the store's file and log, before and after.
	StoreBytesBefore int64 `json:"store_bytes_before"`
	StoreBytesAfter  int64 `json:"store_bytes_after"`
	// Compacted is set when the store was rewritten to turn on
	// incremental vacuum; Note says why it was not when it needs to be.
	Compacted bool   `json:"compacted,omitempty"`
	Note      string `json:"note,omitempty"`
}

func (g *globals) prune(ctx context.Context, o retention.Options) error {
	p, err := g.projectFor(".")
	if err != nil {
		return err
	}
	cfg, err := p.LoadConfig()
	if err != nil {
		return invalid(err)
	}
	out := &pruneOutput{Project: p.Dir, Policy: cfg.Retention, StoreBytesBefore: storeBytes(p)}
	if _, err := os.Stat(p.ConfigPath()); err == nil {
		out.Config = p.ConfigPath()
	}
	st, err := g.openStore(ctx, p, false)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			st.Close()
		}
	}()
	pr, err := retention.New(retention.Config{Store: st, Policy: cfg.Retention, RunsDir: p.RunsDir(), Now: g.now})
	if err != nil {
		return err
	}
	if out.Report, err = pr.Pass(ctx, o); err != nil {
		return err
	}
	if !o.DryRun && out.Vacuum != nil && !out.Vacuum.Incremental {
		if err := g.compact(ctx, p, st, out); err != nil {
			return err
		}
	}
	counts, err := st.RunCount(ctx, &store.RunCountParams{States: deadOnly})
	if err != nil {
		return err
	}
	out.DeadKept = counts[routine.StateDead]
	closed = true
	// Close folds the log into the file, where the freed pages are cut off.
	if err := st.Close(); err != nil {
		return err
	}
	out.StoreBytesAfter = storeBytes(p)
	if g.output == "json" {
		return writeJSON(g.deps.Stdout, out)
	}
	return printPrune(g, out)
}

// compact rewrites a store made before incremental vacuum, unless a
// daemon serves the project: the copy holds the writer for as long as it
// takes, and the daemon's writes would wait for it.
func (g *globals) compact(ctx context.Context, p project.Project, st store.Store, out *pruneOutput) error {
	if _, state, err := p.Daemon(); err != nil {
		return err
	} else if state == project.DaemonUp || state == project.DaemonStarting {
		out.Note = "the store predates incremental vacuum: the space pruning freed is reused, but the file does not shrink; " +
			"stop the daemon and run `routines prune` once more to rewrite it"
		return nil
	}
	c, ok := st.(store.Pruner)
	if !ok {
		return errors.New("the store does not compact")
	}
	if g.output != "json" {
		fmt.Fprintf(g.deps.Stderr, "rewriting the store once to turn on incremental vacuum (%s)…\n", bytesHuman(storeBytes(p)))
	}
	if err := c.Compact(ctx); err != nil {
		return err
	}
	out.Compacted = true
	return nil
}

// storeBytes is the size of the project's store: its file and its log.
func storeBytes(p project.Project) int64 {
	var n int64
	for _, f := range []string{p.StorePath(), p.StorePath() + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func printPrune(g *globals, out *pruneOutput) error {
	verb, col := "pruned", "REMOVED"
	if out.DryRun {
		verb, col = "would prune", "WOULD REMOVE"
	}
	from := "the default retention (no " + project.ConfigFileName + ")"
	if out.Config != "" {
		from = "the retention of " + out.Config
	}
	fmt.Fprintf(g.deps.Stdout, "%s project %s, by %s\n", verb, out.Project, from)
	pol := out.Policy
	dead := "until replayed (" + count(out.DeadKept, "dead run") + " left; --dead-letters deletes them)"
	if out.DeadLetters > 0 && !out.DryRun {
		dead = "deleted with --dead-letters"
	}
	runsKept := pol.Runs.MaxAge.String()
	if pol.Runs.MaxCount > 0 {
		runsKept += ", the newest " + strconv.Itoa(int(pol.Runs.MaxCount)) + " per routine"
	}
	rows := [][]string{
		{"KIND", col, "KEPT FOR"},
		{"runs", strconv.FormatInt(out.Runs, 10), runsKept + " (with their steps, logs, tags and artifacts)"},
		{"dead letters", strconv.FormatInt(out.DeadLetters, 10), dead},
		{"log lines", strconv.FormatInt(out.Logs, 10), pol.Logs.MaxAge.String()},
		{"artifacts", fmt.Sprintf("%d (%s)", out.Artifacts, bytesHuman(out.ArtifactBytes)), pol.Artifacts.MaxAge.String()},
		{"audit records", strconv.FormatInt(out.Audit, 10), pol.Audit.MaxAge.String()},
		{"rollups", strconv.FormatInt(out.Rollups, 10), fmt.Sprintf("minutes %s, hours %s, days kept (stats outlive the runs)",
			routine.Duration(retention.RollupMinutesAge), routine.Duration(retention.RollupHoursAge))},
	}
	if err := table(g.deps.Stdout, rows); err != nil {
		return err
	}
	if out.DryRun {
		_, err := fmt.Fprintf(g.deps.Stdout, "store: %s (file and log)\n", bytesHuman(out.StoreBytesBefore))
		return err
	}
	fmt.Fprintf(g.deps.Stdout, "store: %s → %s (file and log)", bytesHuman(out.StoreBytesBefore), bytesHuman(out.StoreBytesAfter))
	if out.Compacted {
		fmt.Fprint(g.deps.Stdout, ", rewritten once for incremental vacuum")
	}
	fmt.Fprintln(g.deps.Stdout)
	if out.Note != "" {
		fmt.Fprintln(g.deps.Stderr, "note: "+out.Note)
	}
	return nil
}
