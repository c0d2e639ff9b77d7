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
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
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
			"to run the routine NAME. With --wait it prints the steps' output as run-once does, live,\n" +
			"then the run's final state, and exits with it.",
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
				token = g.getenv("ROUTINES_TOKEN")
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
		return "", invalid(fmt.Errorf("%w%s", err, projectsBelow(p, func(sub project.Project) bool {
			_, state, _ := sub.Daemon()
			return state == project.DaemonUp
		}, "with a daemon up")))
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
	// The steps' output as run-once shows it, live, from the daemon.
	view := &liveView{stdout: human, stderr: g.deps.Stderr}
	var end *server.RunDetail
	err = c.follow(ctx, queued.RunID, "", func(e server.Event) error {
		switch {
		case e.Line != nil:
			view.Log(*e.Line)
		case e.Step != nil:
			view.StepFinished(nil, e.Step)
		case e.End != nil:
			end = e.End
		}
		return nil
	})
	if err != nil {
		return err
	}
	view.summary(end.Run)
	if g.output == "json" {
		if err := writeJSON(g.deps.Stdout, end); err != nil {
			return err
		}
	}
	return runExit(end.State)
}

// apiClient speaks the daemon's JSON API.
type apiClient struct {
	base  string
	token string
}

// do sends a request and decodes a 2xx answer into out; any other answer
// is an error carrying the API's message (see send).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	resp, err := c.send(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// follow reads the events of run id (of step, when set) from the daemon's
// stream (GET /v1/runs/<id>/logs) and calls fn for each, up to the run's
// end.
func (c *apiClient) follow(ctx context.Context, id, step string, fn func(server.Event) error) error {
	path := "/v1/runs/" + url.PathEscape(id) + "/logs"
	if step != "" {
		path += "?step=" + url.QueryEscape(step)
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = server.ReadEvents(resp.Body, fn)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the daemon stopped streaming run %s before it ended (was it stopped?); follow it again with: routines logs -f %s", id, id)
	}
	return err
}

// send sends a request and returns a 2xx answer, whose body the caller
// closes; any other answer is an error carrying the API's message (4xx
// other than 401/429 as bad input).
func (c *apiClient) send(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the daemon: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
		return nil, invalid(err)
	}
	return nil, err
}
