package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/server"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var inputs []string
	var wait bool
	var serverURL, token string
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Fire a routine on the running daemon (routines serve)",
		Long: "invoke asks the daemon of this project (its address is in .routines/serve.json, or --server)\n" +
			"to run the routine NAME. With --wait it waits for the run and prints its final state.\n" +
			"Exit codes: 0 queued (or, with --wait, succeeded), 1 failed, 2 bad input, 130 cancelled.",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input := make(map[string]string, len(inputs))
			for _, p := range inputs {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" {
					return invalidf("--input %q: write key=value", p)
				}
				input[k] = v
			}
			if token == "" {
				token = os.Getenv("ROUTINES_TOKEN")
			}
			base, err := g.daemonURL(serverURL)
			if err != nil {
				return err
			}
			c := &apiClient{base: base, token: token}
			return g.invoke(cmd.Context(), c, args[0], input, wait)
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input as key=value (repeatable)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end; the exit code follows its state")
	cmd.Flags().StringVar(&serverURL, "server", "", "URL of the daemon (default: the address in .routines/serve.json)")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $ROUTINES_TOKEN)")
	return cmd
}

// daemonURL returns the base URL of the daemon: --server, else the
// address the project's running daemon recorded.
func (g *globals) daemonURL(flag string) (string, error) {
	if flag != "" {
		return strings.TrimRight(flag, "/"), nil
	}
	p, err := g.projectFor(".")
	if err != nil {
		return "", err
	}
	base, err := p.DaemonURL()
	if errors.Is(err, project.ErrNoDaemon) {
		return "", invalid(err)
	}
	return base, err
}

func (g *globals) invoke(ctx context.Context, c *apiClient, name string, input map[string]string, wait bool) error {
	body, err := json.Marshal(input)
	if err != nil {
		return err
	}
	var queued struct {
		RunID string `json:"run_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/routines/"+url.PathEscape(name)+"/runs", body, &queued); err != nil {
		return err
	}
	human := g.deps.Stdout
	if g.output == "json" {
		human = g.deps.Stderr
	}
	fmt.Fprintf(human, "run %s queued · %s\n", queued.RunID, name)
	if !wait {
		if g.output == "json" {
			return writeJSON(g.deps.Stdout, queued)
		}
		return nil
	}
	var run server.RunDetail
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if err := c.do(ctx, http.MethodGet, "/v1/runs/"+queued.RunID, nil, &run); err != nil {
			return err
		}
		if run.State.Final() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if g.output == "json" {
		if err := writeJSON(g.deps.Stdout, run); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.deps.Stdout, "run %s %s in %s\n", run.ID, run.State, span(run.StartedAt, run.FinishedAt))
		if e := run.Error; e != nil {
			fmt.Fprintf(g.deps.Stdout, "error (%s): %s\n", e.Code, e.Message)
		}
	}
	switch run.State {
	case routine.StateSucceeded:
		return nil
	case routine.StateCancelled:
		return &exitError{code: ExitCancelled, err: errSilent}
	}
	return &exitError{code: ExitFailed, err: errSilent}
}

// apiClient speaks the daemon's JSON API.
type apiClient struct {
	base  string
	token string
}

// do sends a request and decodes a 2xx answer into out; any other answer
// is an error carrying the API's message (4xx other than 401/429 as bad input).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
			return invalid(err)
		}
		return err
	}
	return json.Unmarshal(data, out)
}
