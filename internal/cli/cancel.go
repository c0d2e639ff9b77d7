package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/routine"
)

func newCancelCmd(g *globals) *cobra.Command {
	var serverURL, token string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a queued or running run on the daemon (routines serve) or a server",
		Long: "cancel asks the daemon of this project (its address is in .routines/serve.json, or --server),\n" +
			"or the server of --profile, to cancel the run RUN (an id, or a unique prefix of one). A queued\n" +
			"run ends cancelled at once. A running run's steps are killed by whichever worker holds it, and\n" +
			"it ends cancelled, without compensation or on_failure; cancel waits up to --wait for that.\n" +
			"Docs: " + docsURL + "/runs.md#cancelling-a-run",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient(serverURL, token)
			if err != nil {
				return err
			}
			return g.cancel(cmd.Context(), c, args[0], wait)
		},
	}
	durationVar(cmd.Flags(), &wait, "wait", 30*time.Second, "how long to wait for a running run to end; 0 to return once the cancel is requested")
	cmd.Flags().StringVar(&serverURL, "server", "", "URL of the daemon (default: the address in .routines/serve.json)")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $ROUTINES_TOKEN)")
	return cmd
}

func (g *globals) cancel(ctx context.Context, c *client.Client, id string, wait time.Duration) error {
	run, err := c.CancelRun(ctx, id, wait)
	if err != nil {
		return g.apiErr(err)
	}
	if g.output == "json" {
		if err := writeJSON(g.deps.Stdout, run); err != nil {
			return err
		}
	} else {
		switch run.State {
		case routine.StateCancelled:
			fmt.Fprintf(g.deps.Stdout, "run %s cancelled · %s\n", run.ID, run.Routine)
		case routine.StateRunning:
			fmt.Fprintf(g.deps.Stdout, "run %s · %s: cancel requested, its steps are being stopped (see: routines show %s)\n", run.ID, run.Routine, run.ID)
		default:
			fmt.Fprintf(g.deps.Stdout, "run %s · %s ended %s before the cancel took effect\n", run.ID, run.Routine, run.State)
		}
	}
	if run.State.Final() && run.State != routine.StateCancelled {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}

func newRerunCmd(g *globals) *cobra.Command {
	var serverURL, token string
	var wait bool
	cmd := &cobra.Command{
		Use:   "rerun RUN",
		Short: "Run an ended run again, with the same input and trigger payload, on the daemon or a server",
		Long: "rerun asks the daemon of this project (its address is in .routines/serve.json, or --server),\n" +
			"or the server of --profile, to queue a new run of the routine of RUN (an id, or a unique prefix\n" +
			"of one; any run that ended) with its input and trigger payload. The new run runs the routine's\n" +
			"current revision; its trigger is rerun and its replay_of is RUN. With --wait it prints the\n" +
			"steps' output live, then the run's final state, and exits with it.",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient(serverURL, token)
			if err != nil {
				return err
			}
			return g.rerun(cmd.Context(), c, args[0], wait)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the new run to end; the exit code follows its state")
	cmd.Flags().StringVar(&serverURL, "server", "", "URL of the daemon (default: the address in .routines/serve.json)")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $ROUTINES_TOKEN)")
	return cmd
}

func (g *globals) rerun(ctx context.Context, c *client.Client, id string, wait bool) error {
	newID, err := c.RerunRun(ctx, id)
	if err != nil {
		return g.apiErr(err)
	}
	var run *api.RunDetail
	if run, err = c.GetRun(ctx, newID); err != nil {
		return g.apiErr(err)
	}
	return g.watchRun(ctx, c, newID, run.Routine, wait)
}
