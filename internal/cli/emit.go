package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/routine"
)

func newEmitCmd(g *globals) *cobra.Command {
	var data, dedupe, serverURL, token string
	cmd := &cobra.Command{
		Use:   "emit NAME",
		Short: "Publish an event to the running daemon (routines serve)",
		Long: "emit publishes the event NAME to the daemon of this project (its address is in\n" +
			".routines/serve.json, or --server), or the server of --profile: every routine with an\n" +
			"`event: {name: NAME}` trigger gets a run whose event is --data. With --dedupe KEY (or a\n" +
			"trigger's own dedupe:), a duplicate inside the window folds into the first run. An event\n" +
			"no routine listens to is not an error: events are fire-and-forget.",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := routine.CheckEventName(args[0]); err != nil {
				return invalid(err)
			}
			body := []byte(`{}`)
			if strings.TrimSpace(data) != "" {
				body = []byte(data)
				if !json.Valid(body) {
					var v any
					err := json.Unmarshal(body, &v)
					return invalidf("--data is not valid JSON: %v", err)
				}
			}
			c, err := g.apiClient(serverURL, token)
			if err != nil {
				return err
			}
			return g.emit(cmd.Context(), c, args[0], body, dedupe)
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the event, as JSON (default {})")
	cmd.Flags().StringVar(&dedupe, "dedupe", "", "dedupe key: overrides the listeners' own dedupe expressions")
	cmd.Flags().StringVar(&serverURL, "server", "", "URL of the daemon (default: the address in .routines/serve.json)")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $ROUTINES_TOKEN)")
	return cmd
}

func (g *globals) emit(ctx context.Context, c *client.Client, name string, body json.RawMessage, dedupe string) error {
	res, err := c.Emit(ctx, name, body, dedupe, 0)
	if err != nil {
		return g.apiErr(err)
	}
	if g.output == "json" {
		return writeJSON(g.deps.Stdout, res)
	}
	if len(res.Runs) == 0 {
		fmt.Fprintf(g.deps.Stdout, "event %s emitted · no routine listens to it\n", name)
		return nil
	}
	for _, r := range res.Runs {
		if r.Deduplicated {
			fmt.Fprintf(g.deps.Stdout, "run %s deduplicated · %s\n", r.RunID, r.Routine)
		} else {
			fmt.Fprintf(g.deps.Stdout, "run %s queued · %s\n", r.RunID, r.Routine)
		}
	}
	return nil
}
