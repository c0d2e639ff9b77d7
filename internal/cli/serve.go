package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/alert"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/daemon"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// apiOptions are the flags of a daemon that serves the API: serve and
// server.
type apiOptions struct {
	addr       string
	token      string
	maxQueued  int
	limits     server.Limits
	maxBodyMiB int
	costs      costOptions
	// costConfig is what costs loads to in check.
	costConfig *cost.Config
	// alerts are the settings of the evaluation of alerts; its
	// DashboardURL is --public-url until listen fills it in.
	alerts daemon.AlertOptions
}

func (o *apiOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:7070", "address to listen on (port 0: any free port)")
	f.StringVar(&o.token, "token", "", "API token required on /v1 and /metrics as Authorization: Bearer (default $ROUTINES_TOKEN)")
	f.IntVar(&o.maxQueued, "max-queued", 100000, "bound of the backlog: past it, new runs are refused with 429")
	d := server.DefaultLimits
	durationVar(f, &o.limits.ReadHeaderTimeout, "read-header-timeout", d.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	durationVar(f, &o.limits.ReadTimeout, "read-timeout", d.ReadTimeout, "how long a client may take to send a whole request, body included")
	durationVar(f, &o.limits.WriteTimeout, "write-timeout", d.WriteTimeout, "how long an answer may take to write (a ?wait request gets its wait on top)")
	durationVar(f, &o.limits.IdleTimeout, "idle-timeout", d.IdleTimeout, "how long a kept-alive connection may wait for its next request")
	f.IntVar(&o.limits.MaxConns, "max-conns", d.MaxConns, "open connections at most (kept below half the file descriptor limit); past it the longest idle one is closed, or the newcomer gets 503")
	f.IntVar(&o.maxBodyMiB, "max-body-in-flight", int(d.MaxBodyInFlight>>20), "MiB of request bodies read at once, across requests; past it requests get 503 with Retry-After")
	o.costs.flags(f, true)
	durationVar(f, &o.alerts.Interval, "alert-interval", alert.DefaultInterval, "how often the alerts of routines are evaluated")
	f.StringVar(&o.alerts.DashboardURL, "public-url", "", "the address users reach this daemon at, which alert notifications link to (env ROUTINES_PUBLIC_URL; default http://<--addr>)")
}

// check validates the flags and fills what they imply: the token from
// ROUTINES_TOKEN, the bytes of bodies in flight, the costs configuration.
func (o *apiOptions) check(g *globals) error {
	if o.token == "" {
		o.token = g.getenv("ROUTINES_TOKEN")
	}
	if o.limits.MaxConns < 1 || o.maxBodyMiB < 1 {
		return invalidf("--max-conns %d, --max-body-in-flight %d: want at least 1", o.limits.MaxConns, o.maxBodyMiB)
	}
	o.limits.MaxBodyInFlight = int64(o.maxBodyMiB) << 20
	if o.alerts.Interval <= 0 {
		return invalidf("--alert-interval %s: want more than 0, such as 15s", o.alerts.Interval)
	}
	if o.alerts.DashboardURL == "" {
		o.alerts.DashboardURL = g.getenv("ROUTINES_PUBLIC_URL")
	}
	if u := o.alerts.DashboardURL; u != "" {
		if _, err := routine.CheckHTTPURL(u); err != nil {
			return invalidf("--public-url %s", err)
		}
	}
	var err error
	o.costConfig, err = o.costs.load(g)
	return err
}

// listen listens on --addr, with a warning when the address is reachable
// from other machines and no token guards the API (what anyone could do).
func (o *apiOptions) listen(g *globals, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if ok && !tcp.IP.IsLoopback() && o.token == "" {
		fmt.Fprintf(g.deps.Stderr, "warning: listening on %s without an API token: anyone who can reach it can %s; set --token or ROUTINES_TOKEN\n", ln.Addr(), what)
	}
	if o.alerts.DashboardURL == "" {
		host := ln.Addr().String()
		if ok && tcp.IP.IsUnspecified() {
			// Listening on every address: the machine's name is the
			// best guess of the one users reach.
			name, _ := os.Hostname()
			host = net.JoinHostPort(cmp.Or(name, "localhost"), strconv.Itoa(tcp.Port))
		}
		o.alerts.DashboardURL = "http://" + host
	}
	return ln, nil
}

// serveOptions are the flags of serve.
type serveOptions struct {
	apiOptions
	workers         int
	grace           time.Duration
	lease           time.Duration
	allowUnconfined bool
	noReload        bool
	requeueAfter    time.Duration
	// sync is --sync: full (the default) or normal (sqlite.Sync).
	sync string
}

func newServeCmd(g *globals) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [DIR]",
		Short: "Run the local daemon: triggers, webhooks, the API and the queue of runs",
		Long: "serve finds every routine.yaml under DIR (default: the current directory), validates them,\n" +
			"starts their cron, every, file and email triggers, serves webhooks (POST /hooks/<path>) and the API (/v1) and\n" +
			"works the queue in .routines/state.db. SIGTERM or Ctrl-C stops intake, lets running steps\n" +
			"finish for --grace, then cancels them; the next serve resumes interrupted runs. Docs: " + docsURL + "/serve.md",
		Args: argsRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return g.serve(ctx, firstArg(args), o)
		},
	}
	o.apiOptions.flags(cmd)
	f := cmd.Flags()
	f.IntVar(&o.workers, "workers", 32, "runs executed at once (each run step is a process)")
	durationVar(f, &o.grace, "grace", 30*time.Second, "on shutdown, how long running steps may finish before they are cancelled")
	durationVar(f, &o.lease, "lease", 30*time.Second, "lease of a claimed run; the runs of a dead owner on this machine are taken over at once, those of an owner elsewhere after it")
	f.BoolVar(&o.allowUnconfined, "allow-unconfined", false, "run steps without Landlock when the kernel does not offer it")
	f.BoolVar(&o.noReload, "no-reload", false, "do not reload routines when their files change")
	durationVar(f, &o.requeueAfter, "requeue-after", 5*time.Second, "a retry backoff longer than this puts the run back in the queue instead of holding a worker (0: never)")
	f.StringVar(&o.sync, "sync", string(sqlite.SyncFull), "full: every accepted run is on disk before it is acknowledged; normal: a power cut may lose the last seconds of runs (for throwaway workloads only)")
	return cmd
}

func (g *globals) serve(ctx context.Context, dir string, o *serveOptions) error {
	started := time.Now()
	if dir == "" {
		dir = "."
	}
	if o.workers < 1 {
		return invalidf("--workers %d: want at least 1", o.workers)
	}
	if sync := sqlite.Sync(o.sync); sync != sqlite.SyncFull && sync != sqlite.SyncNormal {
		return invalidf("--sync %s: want full (the default) or normal", o.sync)
	}
	if err := o.apiOptions.check(g); err != nil {
		return err
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if info, err := os.Stat(root); err != nil || !info.IsDir() {
		return invalidf("%s: not a directory", dir)
	}
	proj, err := g.projectFor(root)
	if err != nil {
		return invalid(err)
	}
	routines, err := project.Discover(root, g.deps.Stderr, g.checkSecrets)
	if err != nil {
		return invalid(err)
	}
	if err := daemon.CheckHooks(routines); err != nil {
		return invalid(err)
	}
	byName := make(map[string]*routine.Routine, len(routines))
	for _, r := range routines {
		byName[r.Name] = r
	}
	for _, r := range routines {
		if err := checkCalls(r, func(name string) (*routine.Routine, bool) { c, ok := byName[name]; return c, ok }); err != nil {
			return invalid(err)
		}
	}
	if n := reservedSum(routines); n >= o.workers {
		fmt.Fprintf(g.deps.Stderr, "warning: routines reserve %d of %d workers: routines without a reservation get %d; raise --workers\n", n, o.workers, max(0, o.workers-n))
	}
	unconfined := false
	for _, r := range routines {
		u, err := g.confinement(r, o.allowUnconfined)
		if err != nil {
			return invalid(err)
		}
		if u {
			unconfined = true
			break // warned once
		}
	}
	st, err := g.openStoreSync(ctx, proj, true, sqlite.Sync(o.sync))
	if err != nil {
		return err
	}
	defer st.Close()
	// One daemon per project: a second one would fire every cron twice.
	lock, err := proj.LockDaemon()
	if err != nil {
		return invalid(err)
	}
	defer lock.Release()
	resolver, err := g.secretResolver(st, proj)
	if err != nil {
		return err
	}
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(g.deps.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logLayers(logger)

	ln, err := o.listen(g, "run your routines")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	spans, err := g.tracing(ctx, "serve", logger)
	if err != nil {
		ln.Close()
		return err
	}
	d, err := daemon.NewLocal(daemon.LocalConfig{
		Root: root, Project: proj, Routines: routines, Store: st, Secrets: resolver, Vault: secrets.NewBuiltin(st, keys),
		Kinds: g.deps.Kinds, Triggers: g.deps.Triggers, Logger: logger, Warn: g.deps.Stderr,
		Check: func(r *routine.Routine, get func(string) (*routine.Routine, bool)) error {
			return g.checkReloaded(r, get, o.allowUnconfined, unconfined)
		},
		Listener: ln, Reload: !o.noReload,
		Workers: o.workers, Lease: o.lease, RequeueAfter: o.requeueAfter,
		Unconfined: unconfined, AllowMissing: g.allowMissing,
		Token: o.token, MaxQueued: o.maxQueued, Limits: o.limits, Costs: o.costConfig, Alerts: o.alerts,
		Metrics: g.newMetrics(logger),
		Tracing: spans,
	})
	if err != nil {
		ln.Close()
		return errors.Join(err, spans.Shutdown(context.Background()))
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	stop := func() error {
		graceCtx, cancel := context.WithTimeout(context.Background(), o.grace)
		defer cancel()
		return d.Stop(graceCtx)
	}
	// serve.json tells clients (invoke, emit, tests) the daemon is up: it
	// is written once every trigger watches, so what happens after it is seen.
	if err := lock.Publish(project.Daemon{Addr: addr, PID: os.Getpid(), Started: started, Serving: root}); err != nil {
		return errors.Join(err, stop())
	}
	fmt.Fprintf(g.deps.Stdout, "serving %d routine(s) from %s on http://%s (project %s)\n", len(routines), root, addr, proj.Dir)

	select {
	case <-ctx.Done():
	case err := <-d.Failed():
		return errors.Join(fmt.Errorf("serve: %w", err), stop())
	}
	// Shutdown: refuse new work first, then let the runs in flight finish.
	fmt.Fprintf(g.deps.Stdout, "shutting down: waiting up to %s for running steps\n", o.grace)
	if err := stop(); err != nil {
		return err
	}
	fmt.Fprintln(g.deps.Stdout, "stopped")
	return nil
}

// checkReloaded vets a routine file the daemon reloads as serve vetted
// those it started with: declared secrets, the routines it calls (found
// with get), and its confinement, which must be the daemon's (it started
// confined or not).
func (g *globals) checkReloaded(r *routine.Routine, get func(string) (*routine.Routine, bool), allowUnconfined, daemonUnconfined bool) error {
	if err := g.checkSecrets(r); err != nil {
		return err
	}
	if err := checkCalls(r, get); err != nil {
		return err
	}
	u, err := g.confinement(r, allowUnconfined)
	if err == nil && u && !daemonUnconfined {
		err = errors.New("its run steps cannot be confined and the daemon started confined; restart it")
	}
	return err
}

// reservedSum adds up the concurrency.reserved of routines.
func reservedSum(rs []*routine.Routine) int {
	n := 0
	for _, r := range rs {
		if r.Concurrency != nil {
			n += r.Concurrency.Reserved
		}
	}
	return n
}
