package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/project"
)

func newInvokeCmd(g *globals) *cobra.Command {
	var inputs []string
	var wait bool
	var serverURL, token string
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Fire a routine on the running daemon (routines serve)",
		Long: "invoke asks the daemon of this project (its address is in .routines/serve.json, or --server),\n" +
			"or the server of --profile, to run the routine NAME. With --wait it prints the steps' output\n" +
			"as run-once does, live, then the run's final state, and exits with it.",
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
			c, err := g.apiClient(serverURL, token)
			if err != nil {
				return err
			}
			return g.invoke(cmd.Context(), c, args[0], input, wait)
		},
	}
	cmd.Flags().StringArrayVarP(&inputs, "input", "i", nil, "input as key=value (repeatable)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end; the exit code follows its state")
	cmd.Flags().StringVar(&serverURL, "server", "", "URL of the daemon (default: the address in .routines/serve.json)")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $ROUTINES_TOKEN)")
	return cmd
}

// daemonClient returns the client of the daemon, with token: at --server
// (flag), else at the address the project's running daemon recorded,
// trusting the certificate it recorded when it serves HTTPS.
func (g *globals) daemonClient(flag, token string) (*client.Client, error) {
	if flag != "" {
		return g.newClient(strings.TrimRight(flag, "/"), token, "", "")
	}
	p, err := g.projectFor(".")
	if err != nil {
		return nil, err
	}
	d, err := p.Running()
	if errors.Is(err, project.ErrNoDaemon) {
		return nil, invalid(fmt.Errorf("%w%s", err, projectsBelow(p, func(sub project.Project) bool {
			_, state, _ := sub.Daemon()
			return state == project.DaemonUp
		}, "with a daemon up")))
	}
	if err != nil {
		return nil, err
	}
	return g.newClient(d.URL(), token, "", d.Cert)
}

// newClient returns the client of the API at base with token. It trusts
// the CA of --ca-cert, else of $ROUTINES_CA_CERT, else profileCA (a
// profile's); without one, the certificate file pin when set (the one a
// daemon of this machine recorded), else the system's roots.
func (g *globals) newClient(base, token, profileCA, pin string) (*client.Client, error) {
	if ca := g.caFile(profileCA); ca != "" {
		conf, err := client.TrustCA(ca)
		if err != nil {
			return nil, invalidf("--ca-cert: %v", err)
		}
		return client.New(base, token, client.WithTLS(conf)), nil
	}
	if pin != "" {
		return client.New(base, token, client.WithTLS(client.TrustFile(pin))), nil
	}
	return client.New(base, token), nil
}

// caFile is the file of the CA certificate servers are checked with:
// --ca-cert, else $ROUTINES_CA_CERT, else profileCA; "" for the
// system's roots.
func (g *globals) caFile(profileCA string) string {
	return cmp.Or(g.caCert, g.getenv("ROUTINES_CA_CERT"), profileCA)
}

func (g *globals) invoke(ctx context.Context, c *client.Client, name string, input map[string]string, wait bool) error {
	id, err := c.CreateRun(ctx, name, input)
	if err != nil {
		return g.apiErr(err)
	}
	return g.watchRun(ctx, c, id, name, wait)
}

// watchRun tells that run id of routine name was queued and, with wait,
// shows its steps' output live, then its end, and exits with its state.
func (g *globals) watchRun(ctx context.Context, c *client.Client, id, name string, wait bool) error {
	human := g.deps.Stdout
	if g.output == "json" {
		human = g.deps.Stderr
	}
	fmt.Fprintf(human, "run %s queued · %s\n", id, name)
	if !wait {
		if g.output == "json" {
			return writeJSON(g.deps.Stdout, map[string]string{"run_id": id})
		}
		return nil
	}
	// The steps' output as run-once shows it, live, from the daemon.
	view := &liveView{stdout: human, stderr: g.deps.Stderr}
	var end *api.RunDetail
	err := c.FollowLogs(ctx, id, "", func(e api.Event) error {
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
		return g.apiErr(err)
	}
	view.summary(end.Run)
	if g.output == "json" {
		if err := writeJSON(g.deps.Stdout, end); err != nil {
			return err
		}
	}
	return runExit(end.State)
}

// apiClient returns the client of the daemon at serverURL (--server),
// else of the selected profile's server, else of the project's running
// daemon; with token, else the profile's, else $ROUTINES_TOKEN.
func (g *globals) apiClient(serverURL, token string) (*client.Client, error) {
	if serverURL == "" {
		rm, err := g.remote(token)
		if err != nil {
			return nil, err
		}
		if rm != nil {
			return rm.c, nil
		}
	}
	if token == "" {
		token = g.getenv("ROUTINES_TOKEN")
	}
	return g.daemonClient(serverURL, token)
}

// apiErr words an error of the API client for the command line: a daemon
// that does not answer, a token it refuses, or an answer that blames the
// request (400, 404, 409, 422) is bad input (exit 2); a stream that ended
// early says how to resume. A server of a profile is named as such. nil
// stays nil.
func (g *globals) apiErr(err error) error {
	var unreachable *client.UnreachableError
	var apiError *client.APIError
	var ended *client.StreamEndedError
	var certErr *client.CertificateError
	switch {
	case errors.As(err, &certErr):
		return invalid(certErr)
	case errors.As(err, &unreachable) && g.selected != "":
		return invalidf("nothing answers at %s (profile %s): %v; check that the server is up, or log in again with: routines login URL --profile %s", unreachable.URL, g.selected, unreachable.Err, g.selected)
	case errors.As(err, &unreachable):
		return invalidf("no daemon answers at %s: %v (start `routines serve`, or check --server)", unreachable.URL, unreachable.Err)
	case errors.As(err, &apiError) && apiError.Status == http.StatusUnauthorized && g.selected != "":
		return invalidf("%s %s: the server refused the token of profile %s (401): log in again with: routines login URL --profile %s", apiError.Method, apiError.Path, g.selected, g.selected)
	case errors.As(err, &apiError) && (apiError.Status == http.StatusBadRequest || apiError.Status == http.StatusNotFound ||
		apiError.Status == http.StatusConflict || apiError.Status == http.StatusUnprocessableEntity):
		return invalid(err)
	case errors.As(err, &ended):
		return fmt.Errorf("%w; follow it again with: routines logs -f %s", err, ended.RunID)
	}
	return err
}
