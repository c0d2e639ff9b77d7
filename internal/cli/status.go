package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the project here: its directory, store, vault, daemon and routines",
		Long: "status shows the project the other commands would use from here (how it is found:\n" +
			"routines help projects): its directory and how it was found, its store and last run, its\n" +
			"vault and master key, its daemon (up, stale or not running, with the problems the daemon\n" +
			"reports), and the routines under it with their triggers, invalid ones with their problems.",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := g.statusOf(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return writeJSON(g.deps.Stdout, rep)
			}
			rep.print(g)
			return nil
		},
	}
}

// statusOf returns what routines status shows: the status of the
// selected profile's server, else of the project here.
func (g *globals) statusOf(ctx context.Context) (interface{ print(*globals) }, error) {
	rm, err := g.remote("")
	if err != nil {
		return nil, err
	}
	if rm != nil {
		return g.statusRemote(ctx, rm)
	}
	return g.status(ctx)
}

// statusReport is what routines status shows.
type statusReport struct {
	Project   string        `json:"project"`
	FoundBy   project.How   `json:"found_by"`
	Store     string        `json:"store"`
	HasStore  bool          `json:"has_store"`
	LastRun   *routine.Run  `json:"last_run,omitempty"`
	Secrets   []string      `json:"secrets"`
	MasterKey string        `json:"master_key"`
	Daemon    statusDaemon  `json:"daemon"`
	Routines  []statusEntry `json:"routines"`
	// Invalid holds the problems of the routine files that do not load.
	Invalid []string `json:"invalid"`
}

// statusDaemon is the project's daemon as status sees it.
type statusDaemon struct {
	State project.DaemonState `json:"state"`
	project.Daemon
	// Problems are what the daemon reports it cannot do (a webhook whose
	// secret is not set…), read from its /v1/status.
	Problems []api.Problem `json:"problems"`
	Error    string        `json:"error,omitempty"`
}

// statusEntry is one routine of the project.
type statusEntry struct {
	Name     string   `json:"name"`
	File     string   `json:"file"`
	Triggers []string `json:"triggers"`
	// Next is when a cron or every trigger fires it next under a daemon;
	// absent when it has none.
	Next *time.Time `json:"next,omitempty"`
}

func (g *globals) status(ctx context.Context) (*statusReport, error) {
	p, err := g.projectFor(".")
	if err != nil {
		return nil, err
	}
	rep := &statusReport{Project: p.Dir, FoundBy: p.How, Store: p.StorePath(), HasStore: p.HasStore(), Secrets: []string{}, Invalid: []string{}}
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return nil, err
	}
	rep.MasterKey = masterKeyStatus(keys)
	rep.Daemon = g.daemonStatus(ctx, p)

	var invalid bytes.Buffer
	rs, err := project.Discover(p.Dir, &invalid, g.checkSecrets)
	if err != nil {
		rep.Invalid = append(rep.Invalid, err.Error())
	}
	if s := strings.TrimSpace(invalid.String()); s != "" {
		rep.Invalid = append(rep.Invalid, strings.Split(s, "\n")...)
	}
	var st store.Store
	if rep.HasStore {
		sq, err := g.openStore(ctx, p, false)
		if err != nil {
			return nil, err
		}
		defer sq.Close()
		st = sq
		if err := storeStatus(ctx, st, keys, rep); err != nil {
			return nil, err
		}
	}
	for _, r := range rs {
		e := statusEntry{Name: r.Name, File: r.File, Triggers: []string{}, Next: server.NextFire(ctx, st, r, g.now())}
		for i := range r.Triggers {
			e.Triggers = append(e.Triggers, r.Triggers[i].Describe())
		}
		rep.Routines = append(rep.Routines, e)
	}
	return rep, nil
}

// storeStatus fills in the last run and the names of the stored secrets.
func storeStatus(ctx context.Context, st store.Store, keys secrets.KeySource, rep *statusReport) error {
	runs, err := st.RunList(ctx, &store.RunListParams{Limit: 1})
	if err != nil {
		return err
	}
	if len(runs) > 0 {
		rep.LastRun = runs[0]
	}
	list, err := secrets.NewBuiltin(st, keys).List(ctx, store.DefaultNamespace)
	if err != nil {
		return err
	}
	for _, s := range list {
		rep.Secrets = append(rep.Secrets, s.Name)
	}
	return nil
}

// masterKeyStatus says where the master key comes from and whether it is there.
func masterKeyStatus(keys secrets.KeySource) string {
	if keys.Env != "" {
		return secrets.MasterKeyEnv + " (from the environment)"
	}
	if _, err := os.Stat(keys.File); errors.Is(err, fs.ErrNotExist) {
		return keys.File + " (not created yet: the first `routines secrets set` creates it)"
	}
	return keys.File
}

// daemonStatus reads the project's daemon record and, when it is up,
// the problems it reports.
func (g *globals) daemonStatus(ctx context.Context, p project.Project) statusDaemon {
	d, state, err := p.Daemon()
	sd := statusDaemon{State: state, Daemon: d, Problems: []api.Problem{}}
	if err != nil {
		sd.Error = err.Error()
		return sd
	}
	if state != project.DaemonUp {
		return sd
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := g.newClient(d.URL(), g.getenv("ROUTINES_TOKEN"), "", d.Cert)
	var st *api.Status
	if err == nil {
		st, err = c.Status(ctx)
	}
	if err != nil {
		sd.Error = err.Error()
		return sd
	}
	sd.Problems = append(sd.Problems, st.Problems...)
	return sd
}

func (rep *statusReport) print(g *globals) {
	w := tabwriter.NewWriter(g.deps.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "project\t%s (%s)\n", rep.Project, foundBy(rep.FoundBy))
	switch {
	case !rep.HasStore:
		fmt.Fprintf(w, "store\t%s: none yet (the first run-once, serve or secrets set creates it)\n", rep.Store)
	case rep.LastRun != nil:
		fmt.Fprintf(w, "store\t%s; last run %s (%s, %s) %s\n", rep.Store, rep.LastRun.ID, rep.LastRun.Routine, rep.LastRun.State, ago(rep.LastRun.QueuedAt))
	default:
		fmt.Fprintf(w, "store\t%s; no runs yet\n", rep.Store)
	}
	if len(rep.Secrets) == 0 {
		fmt.Fprintf(w, "vault\tno secrets stored\n")
	} else {
		fmt.Fprintf(w, "vault\t%d secret(s): %s\n", len(rep.Secrets), strings.Join(rep.Secrets, ", "))
	}
	fmt.Fprintf(w, "master key\t%s\n", rep.MasterKey)
	d := rep.Daemon
	switch d.State {
	case project.DaemonUp:
		fmt.Fprintf(w, "daemon\tup: pid %d on %s, serving %s, started %s\n", d.PID, d.URL(), d.Serving, ago(d.Started))
	case project.DaemonStale:
		fmt.Fprintf(w, "daemon\tstale: %s records pid %d on %s, started %s, but that daemon is gone (killed or crashed); start `routines serve` again\n",
			project.Project{Dir: rep.Project}.RecordPath(), d.PID, d.Addr, ago(d.Started))
	default:
		fmt.Fprintf(w, "daemon\t%s\n", d.State)
	}
	if d.Error != "" {
		fmt.Fprintf(w, "\t(could not read it: %s)\n", d.Error)
	}
	printProblems(w, d.Problems)
	w.Flush()
	fmt.Fprintf(g.deps.Stdout, "\n%d routine(s) under %s\n", len(rep.Routines), rep.Project)
	if len(rep.Routines) > 0 {
		w = tabwriter.NewWriter(g.deps.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tTRIGGERS\tNEXT\tFILE")
		for _, e := range rep.Routines {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.Name, triggersCell(e.Triggers), nextCell(e.Next), e.File)
		}
		w.Flush()
	}
	if len(rep.Invalid) > 0 {
		fmt.Fprintf(g.deps.Stdout, "\ninvalid routine files (skipped by serve):\n")
		for _, line := range rep.Invalid {
			fmt.Fprintf(g.deps.Stdout, "  %s\n", line)
		}
	}
}

// foundBy says how the project was found.
func foundBy(h project.How) string {
	switch h {
	case project.Named:
		return "named by --project or " + project.EnvVar
	case project.Found:
		return "the nearest directory holding .routines/"
	default:
		return "no .routines/ here or above: this directory, when something is recorded"
	}
}

// ago writes a time with how long ago it was.
func ago(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), time.Since(t).Round(time.Second))
}
