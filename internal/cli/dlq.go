package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "The dead-letter queue: runs that failed for good with dead_letter: true",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return invalid(fmt.Errorf("dlq needs a command: routines dlq list, or routines dlq replay RUN"))
		},
	}
	var limit int
	var since time.Duration
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead runs, whose input is kept for replay",
		Args:  argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withRuns(cmd.Context(), func(rr runReader, where string) error {
				return g.listRuns(cmd.Context(), rr, where, &store.RunListParams{States: deadOnly, Limit: limit}, since)
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 50, "at most this many runs")
	durationVar(list.Flags(), &since, "since", 0, "only runs queued this recently, such as 2h or 7d (default: all)")
	var allowUnconfined bool
	replay := &cobra.Command{
		Use:   "replay RUN",
		Short: "Run a dead run again with the same input and trigger payload, in the foreground",
		Long: "replay starts a new run of the routine (its current revision) with the input and trigger\n" +
			"payload of a dead run; the new run records replay_of. RUN is a run id, a unique prefix of one,\n" +
			"last (the newest dead run), or -1, -2 … (the newest dead run, the one before …).",
		Args:        argsRange(1, 1),
		Annotations: map[string]string{takesRun: string(routine.StateDead)},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.replay(cmd.Context(), args[0], allowUnconfined)
		},
	}
	replay.Flags().BoolVar(&allowUnconfined, "allow-unconfined", false, "run steps without Landlock when the kernel does not offer it")
	cmd.AddCommand(list, replay)
	return cmd
}

// deadOnly selects the dead runs, those the dead-letter queue holds.
var deadOnly = []routine.State{routine.StateDead}

func (g *globals) replay(ctx context.Context, id string, allowUnconfined bool) error {
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	if rm != nil {
		return g.replayRemote(ctx, rm, id)
	}
	var dead *routine.Run
	if err := g.withRunAmong(ctx, id, &store.RunListParams{States: deadOnly}, func(_ store.Store, _ string, run *routine.Run) error {
		dead = run
		return nil
	}); err != nil {
		return err
	}
	if dead.State != routine.StateDead {
		return invalid(fmt.Errorf("run %s is %s, not dead: only dead-lettered runs are replayed", dead.ID, dead.State))
	}
	r, project, err := g.loadByName(dead.Routine)
	if err != nil {
		return err
	}
	if err := checkInputs(r, dead.Input); err != nil {
		return invalid(fmt.Errorf("cannot replay run %s with the current %s: %w", dead.ID, r.Name, err))
	}
	if r.Revision != dead.Revision {
		fmt.Fprintf(g.deps.Stderr, "note: %s changed since run %s (rev %s → %s); replaying with the current file\n", r.Name, dead.ID, routine.ShortRevision(dead.Revision), routine.ShortRevision(r.Revision))
	}
	unconfined, err := g.confinement(r, allowUnconfined)
	if err != nil {
		return invalid(err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return g.execute(ctx, project, r, unconfined, &scheduler.Request{
		Trigger:  routine.TriggerInfo{Kind: routine.TriggerReplay, Payload: dead.Trigger.Payload},
		Input:    dead.Input,
		ReplayOf: dead.ID,
	})
}
