package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// remoteRuns reads runs from the API of a profile's server, as the
// project's store would give them (runReader).
type remoteRuns struct {
	g  *globals
	rm *remote
}

// RunList lists runs; the dead runs from the dead-letter queue's endpoint.
func (r remoteRuns) RunList(ctx context.Context, p *store.RunListParams) ([]*routine.Run, error) {
	q := api.RunQuery{Routine: p.Routine, States: p.States, Trigger: p.Trigger, Tag: p.Tag, Since: p.Since, Limit: p.Limit}
	list := r.rm.c.ListRuns
	if slices.Equal(p.States, deadOnly) {
		q.States, list = nil, r.rm.c.ListDead
	}
	runs, err := list(ctx, q)
	return runs, r.g.apiErr(err)
}

// RunGet finds a run by id or unique prefix; an unknown one wraps
// routine.ErrNotFound, as the store's.
func (r remoteRuns) RunGet(ctx context.Context, id string) (*routine.Run, error) {
	d, err := r.rm.c.GetRun(ctx, id)
	var apiError *client.APIError
	if errors.As(err, &apiError) && apiError.Status == http.StatusNotFound {
		return nil, fmt.Errorf("%s: %w", apiError.Message, routine.ErrNotFound)
	}
	if err != nil {
		return nil, r.g.apiErr(err)
	}
	return d.Run, nil
}

// StepList returns the steps of a run.
func (r remoteRuns) StepList(ctx context.Context, runID string) ([]*routine.StepRun, error) {
	d, err := r.RunDetail(ctx, runID)
	if err != nil {
		return nil, err
	}
	return d.Steps, nil
}

// RunDetail returns a run with its steps, and why it waits when it does.
func (r remoteRuns) RunDetail(ctx context.Context, id string) (*api.RunDetail, error) {
	d, err := r.rm.c.GetRun(ctx, id)
	return d, r.g.apiErr(err)
}

// LogList returns the lines of a run (of p.Step, when set) stored so far.
func (r remoteRuns) LogList(ctx context.Context, p *store.LogListParams) ([]routine.LogLine, error) {
	lines, err := r.rm.c.GetLogs(ctx, p.RunID, p.Step)
	return lines, r.g.apiErr(err)
}

// replayRemote replays a dead run on the profile's server: a new run
// queued there, followed to its end as invoke --wait does.
func (g *globals) replayRemote(ctx context.Context, rm *remote, arg string) error {
	dead, err := resolveRun(ctx, remoteRuns{g: g, rm: rm}, rm.where(), arg, &store.RunListParams{States: deadOnly})
	if err != nil {
		return err
	}
	id, err := rm.c.ReplayRun(ctx, dead.ID)
	if err != nil {
		return g.apiErr(err)
	}
	run, err := rm.c.GetRun(ctx, id)
	if err != nil {
		return g.apiErr(err)
	}
	if run.Revision != dead.Revision {
		fmt.Fprintf(g.deps.Stderr, "note: %s changed since run %s (rev %s → %s); replaying with the revision %s serves\n",
			dead.Routine, dead.ID, routine.ShortRevision(dead.Revision), routine.ShortRevision(run.Revision), rm.url)
	}
	return g.watchRun(ctx, rm.c, id, dead.Routine, true)
}

func (g *globals) secretSetRemote(ctx context.Context, rm *remote, name, value string) error {
	version, err := rm.c.SetSecret(ctx, name, value)
	if err != nil {
		return g.apiErr(err)
	}
	fmt.Fprintf(g.deps.Stdout, "secret %s set (version %d) on %s\n", name, version, rm.where())
	return nil
}

func (g *globals) secretRemoveRemote(ctx context.Context, rm *remote, name string) error {
	err := rm.c.DeleteSecret(ctx, name)
	var apiError *client.APIError
	if errors.As(err, &apiError) && apiError.Status == http.StatusNotFound {
		return invalidf("no secret %s is stored on %s (routines %s secrets list shows those that are)", name, rm.where(), rm.selector())
	}
	if err != nil {
		return g.apiErr(err)
	}
	fmt.Fprintf(g.deps.Stdout, "secret %s removed from %s\n", name, rm.where())
	return nil
}

// remoteStatus is what routines status shows of a profile's server.
type remoteStatus struct {
	Server  string       `json:"server"`
	Profile string       `json:"profile"`
	LastRun *routine.Run `json:"last_run,omitempty"`
	// Secrets are the names in the server's builtin vault; Vault says
	// why there are none to list, when the server keeps no vault.
	Secrets  []string      `json:"secrets"`
	Vault    string        `json:"vault,omitempty"`
	Problems []api.Problem `json:"problems"`
	Routines []api.Routine `json:"routines"`
}

// statusRemote reads the status of a profile's server: its problems,
// routines, last run and secrets' names.
func (g *globals) statusRemote(ctx context.Context, rm *remote) (*remoteStatus, error) {
	rep := &remoteStatus{Server: rm.url, Profile: rm.name, Secrets: []string{}}
	st, err := rm.c.Status(ctx)
	if err != nil {
		return nil, g.apiErr(err)
	}
	rep.Problems = st.Problems
	if rep.Routines, err = rm.c.ListRoutines(ctx); err != nil {
		return nil, g.apiErr(err)
	}
	runs, err := rm.c.ListRuns(ctx, api.RunQuery{Limit: 1})
	if err != nil {
		return nil, g.apiErr(err)
	}
	if len(runs) > 0 {
		rep.LastRun = runs[0]
	}
	secrets, err := rm.c.ListSecrets(ctx)
	var apiError *client.APIError
	switch {
	case errors.As(err, &apiError) && apiError.Status == http.StatusNotImplemented:
		rep.Vault = apiError.Message
	case err != nil:
		return nil, g.apiErr(err)
	}
	for _, s := range secrets {
		rep.Secrets = append(rep.Secrets, s.Name)
	}
	return rep, nil
}

func (rep *remoteStatus) print(g *globals) {
	w := tabwriter.NewWriter(g.deps.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "server\t%s (profile %s)\n", rep.Server, rep.Profile)
	if r := rep.LastRun; r != nil {
		fmt.Fprintf(w, "last run\t%s (%s, %s) %s\n", r.ID, r.Routine, r.State, ago(r.QueuedAt))
	} else {
		fmt.Fprintf(w, "last run\tnone yet\n")
	}
	switch {
	case rep.Vault != "":
		fmt.Fprintf(w, "vault\t%s\n", rep.Vault)
	case len(rep.Secrets) == 0:
		fmt.Fprintf(w, "vault\tno secrets stored\n")
	default:
		fmt.Fprintf(w, "vault\t%d secret(s): %s\n", len(rep.Secrets), strings.Join(rep.Secrets, ", "))
	}
	printProblems(w, rep.Problems)
	w.Flush()
	fmt.Fprintf(g.deps.Stdout, "\n%d routine(s) on %s\n", len(rep.Routines), rep.Server)
	if len(rep.Routines) == 0 {
		return
	}
	w = tabwriter.NewWriter(g.deps.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tTRIGGERS\tNEXT\tREVISION")
	for _, r := range rep.Routines {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, triggersCell(r.Triggers), nextCell(r.Next), orDash(routine.ShortRevision(r.Revision)))
	}
	w.Flush()
}

// printProblems prints what a daemon or server reports it cannot do.
func printProblems(w *tabwriter.Writer, problems []api.Problem) {
	for _, pr := range problems {
		fmt.Fprintf(w, "problem\t%s, %s: %s (%d time(s) since %s)\n", pr.Routine, pr.Trigger, pr.Message, pr.Count, pr.FirstSeen.Local().Format(time.DateTime))
	}
}

// triggersCell shows a routine's triggers in a table cell.
func triggersCell(triggers []string) string {
	if len(triggers) == 0 {
		return "(run by hand or the API)"
	}
	return strings.Join(triggers, "; ")
}

// nextCell shows when a routine fires next in a table cell.
func nextCell(next *time.Time) string {
	if next == nil {
		return "-"
	}
	return next.Format("Mon 2006-01-02 15:04 MST")
}
