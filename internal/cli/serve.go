package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/owner"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/trigger"
)

// serveOptions are the flags of serve.
type serveOptions struct {
	addr            string
	workers         int
	grace           time.Duration
	lease           time.Duration
	token           string
	maxQueued       int
	allowUnconfined bool
	noReload        bool
	requeueAfter    time.Duration
	limits          server.Limits
	maxBodyMiB      int
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
			if o.token == "" {
				o.token = os.Getenv("ROUTINES_TOKEN")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return g.serve(ctx, firstArg(args), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:7070", "address to listen on (port 0: any free port)")
	f.IntVar(&o.workers, "workers", 32, "runs executed at once (each run step is a process)")
	durationVar(f, &o.grace, "grace", 30*time.Second, "on shutdown, how long running steps may finish before they are cancelled")
	durationVar(f, &o.lease, "lease", 30*time.Second, "lease of a claimed run; the runs of a dead owner on this machine are taken over at once, those of an owner elsewhere after it")
	f.StringVar(&o.token, "token", "", "API token required on /v1 as Authorization: Bearer (default $ROUTINES_TOKEN)")
	f.IntVar(&o.maxQueued, "max-queued", 100000, "bound of the backlog: past it, new runs are refused with 429")
	f.BoolVar(&o.allowUnconfined, "allow-unconfined", false, "run steps without Landlock when the kernel does not offer it")
	f.BoolVar(&o.noReload, "no-reload", false, "do not reload routines when their files change")
	durationVar(f, &o.requeueAfter, "requeue-after", 5*time.Second, "a retry backoff longer than this puts the run back in the queue instead of holding a worker (0: never)")
	d := server.DefaultLimits
	durationVar(f, &o.limits.ReadHeaderTimeout, "read-header-timeout", d.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	durationVar(f, &o.limits.ReadTimeout, "read-timeout", d.ReadTimeout, "how long a client may take to send a whole request, body included")
	durationVar(f, &o.limits.WriteTimeout, "write-timeout", d.WriteTimeout, "how long an answer may take to write (a ?wait request gets its wait on top)")
	durationVar(f, &o.limits.IdleTimeout, "idle-timeout", d.IdleTimeout, "how long a kept-alive connection may wait for its next request")
	f.IntVar(&o.limits.MaxConns, "max-conns", d.MaxConns, "open connections at most (kept below half the file descriptor limit); past it the longest idle one is closed, or the newcomer gets 503")
	f.IntVar(&o.maxBodyMiB, "max-body-in-flight", int(d.MaxBodyInFlight>>20), "MiB of request bodies read at once, across requests; past it requests get 503 with Retry-After")
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
	if o.limits.MaxConns < 1 || o.maxBodyMiB < 1 {
		return invalidf("--max-conns %d, --max-body-in-flight %d: want at least 1", o.limits.MaxConns, o.maxBodyMiB)
	}
	o.limits.MaxBodyInFlight = int64(o.maxBodyMiB) << 20
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
	routines, err := discover(root, g.deps.Stderr, g.checkSecrets)
	if err != nil {
		return invalid(err)
	}
	if err := checkHooks(routines); err != nil {
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
	st, err := g.openStore(ctx, proj, true)
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
	logger := slog.New(slog.NewTextHandler(g.deps.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logLayers(logger)

	// The daemon owns the runs it executes under an id whose liveness
	// the next daemon checks: the runs of a dead owner are taken over at
	// once, not when their leases expire.
	own, err := owner.Acquire(proj.OwnersDir())
	if err != nil {
		return err
	}
	defer own.Release()
	leases := scheduler.NewLeases(st, own.ID(), o.lease, nil, logger)
	catalog := scheduler.NewCatalog(routines)
	// The runs' writes go through a store that wakes whoever follows a
	// run's logs (GET /v1/runs/<id>/logs, routines logs -f).
	watched := server.Notifying(st)
	sched := scheduler.New(scheduler.Config{
		Store: watched,
		Executor: engine.New(engine.Config{
			Store:        watched,
			Kinds:        g.deps.Kinds,
			StateDir:     proj.StateDir(),
			Logger:       logger,
			Secrets:      resolver,
			Routines:     catalog,
			Leases:       leases,
			Unconfined:   unconfined,
			AllowMissing: g.allowMissing,
			// Long retry backoffs wait in the queue, not on a worker.
			RequeueAfter: o.requeueAfter,
		}),
		Catalog:  catalog,
		Leases:   leases,
		Liveness: owner.Dir(proj.OwnersDir()),
		// What the steps of a dead owner's run left, killed by their cgroups.
		KillRunProcesses: func(_ context.Context, runID string) error { return sandbox.KillRun(runID) },
		Workers:          o.workers,
		Logger:           logger,
	})
	// Every trigger feeds the queue through this sink.
	sink := func(ctx context.Context, f trigger.Fire) error {
		r, ok := catalog.Get(f.Routine)
		if !ok {
			return fmt.Errorf("no routine %q", f.Routine)
		}
		if f.DedupeKey != "" {
			return enqueueDeduped(ctx, st, sched, logger, r, f)
		}
		_, err := sched.Enqueue(ctx, r, routine.TriggerInfo{Kind: f.Kind, Payload: f.Payload}, nil)
		return err
	}
	clock := trigger.NewScheduler(trigger.SchedulerConfig{
		Logger: logger,
		Active: sched.Active,
		LastFire: func(name string, i int) time.Time {
			r, ok := catalog.Get(name)
			if !ok || i >= len(r.Triggers) {
				return time.Time{}
			}
			return sched.LastFire(name, r.Triggers[i].Kind())
		},
		Sink: sink,
	})
	for _, r := range routines {
		if err := clock.Set(r.Name, r.Triggers); err != nil {
			return invalidf("%s: %v", r.Name, err)
		}
	}
	// What fails until the operator acts, for GET /v1/status: webhooks
	// and Slack commands whose secret is not set, email triggers.
	problems := server.NewProblems(nil)
	api := server.New(server.Config{
		Store: watched, Queue: sched, Routines: catalog,
		Token: o.token, MaxQueued: o.maxQueued, Logger: logger,
		Secret: resolver.Lookup, Limits: o.limits,
		Problems: problems, Project: proj.Dir,
	})

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && o.token == "" {
		fmt.Fprintf(g.deps.Stderr, "warning: listening on %s without an API token: anyone who can reach it can run your routines; set --token or ROUTINES_TOKEN\n", addr)
	}
	sched.Start(ctx)
	if err := clock.Start(ctx); err != nil {
		return err
	}
	// File and email triggers, and the watch on the routine files that reloads them.
	reload := newReloader(root, routines, catalog, clock, sink, logger, g.deps.Stderr)
	reload.mail = emailStarter(st, resolver.Lookup, sink, logger, g.deps.Stderr, problems)
	reload.check = func(r *routine.Routine) error {
		if err := g.checkSecrets(r); err != nil {
			return err
		}
		if err := checkCalls(r, func(name string) (*routine.Routine, bool) {
			if name == r.Name {
				return r, true
			}
			return catalog.Get(name)
		}); err != nil {
			return err
		}
		u, err := g.confinement(r, o.allowUnconfined)
		if err == nil && u && !unconfined {
			err = errors.New("its run steps cannot be confined and the daemon started confined; restart it")
		}
		return err
	}
	if err := reload.start(ctx, routines, !o.noReload); err != nil {
		return err
	}
	stopTriggers := func() {
		clock.Stop()
		reload.stop()
	}
	// serve.json tells clients (invoke, emit, tests) the daemon is up: it
	// is written once every trigger watches, so what happens after it is seen.
	if err := lock.Publish(project.Daemon{Addr: addr, PID: os.Getpid(), Started: started, Serving: root}); err != nil {
		stopTriggers()
		ln.Close()
		return err
	}
	o.limits.MaxConns = connCap(o.limits.MaxConns, logger)
	httpSrv, limited := api.HTTPServer(ln, o.limits)
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(limited) }()
	fmt.Fprintf(g.deps.Stdout, "serving %d routine(s) from %s on http://%s (project %s)\n", len(routines), root, addr, proj.Dir)

	select {
	case <-ctx.Done():
	case err := <-served:
		stopTriggers()
		graceCtx, cancel := context.WithTimeout(context.Background(), o.grace)
		defer cancel()
		sched.Shutdown(graceCtx)
		return fmt.Errorf("serve: %w", err)
	}
	// Shutdown: refuse new work first, then let the runs in flight finish.
	fmt.Fprintf(g.deps.Stdout, "shutting down: waiting up to %s for running steps\n", o.grace)
	api.Drain()
	stopTriggers()
	graceCtx, cancel := context.WithTimeout(context.Background(), o.grace)
	sched.Shutdown(graceCtx)
	cancel()
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(closeCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	fmt.Fprintln(g.deps.Stdout, "stopped")
	return nil
}

// connCap returns the connection cap to use: want, lowered to half the
// soft limit of file descriptors, so that the store, run workspaces and
// step pipes of accepted runs always find descriptors, however many
// clients connect. (Go raises the soft limit to the hard one at start.)
func connCap(want int, logger *slog.Logger) int {
	nofile, ok := nofileLimit()
	if !ok || nofile > math.MaxInt32 {
		return want
	}
	if half := int(nofile / 2); want > half {
		logger.Warn("--max-conns lowered to half the file descriptor limit, to keep descriptors for runs", "max_conns", half, "nofile", nofile)
		return max(1, half)
	}
	return want
}

// startWatchers starts a Watcher per file: trigger. A trigger whose path
// cannot be watched (it does not exist) is reported and left off; the
// other triggers of the routine work.
func startWatchers(ctx context.Context, rs []*routine.Routine, sink trigger.Sink, logger *slog.Logger, warn io.Writer) []*trigger.Watcher {
	var ws []*trigger.Watcher
	for _, r := range rs {
		for i, t := range r.Triggers {
			if t.File == nil {
				continue
			}
			w := trigger.NewWatcher(trigger.WatcherConfig{Routine: r.Name, Trigger: i, Dir: r.Dir, File: *t.File, Sink: sink, Logger: logger})
			if err := w.Start(ctx); err != nil {
				fmt.Fprintf(warn, "warning: %s: file trigger %d is off: %v\n", r.Name, i, err)
				continue
			}
			ws = append(ws, w)
		}
	}
	return ws
}

// checkHooks refuses two routines with a webhook at the same path, or
// with a slack_command trigger of the same command.
func checkHooks(rs []*routine.Routine) error {
	seen := map[string]string{}
	commands := map[string]string{}
	for _, r := range rs {
		for _, t := range r.Triggers {
			if c := t.SlackCommand; c != nil {
				if prev, ok := commands[c.Command]; ok && prev != r.Name {
					return fmt.Errorf("slack command %s is handled by both %s and %s", c.Command, prev, r.Name)
				}
				commands[c.Command] = r.Name
			}
			if t.Webhook == nil {
				continue
			}
			if prev, ok := seen[t.Webhook.Path]; ok && prev != r.Name {
				return fmt.Errorf("webhook path %s is used by both %s and %s", t.Webhook.Path, prev, r.Name)
			}
			seen[t.Webhook.Path] = r.Name
		}
	}
	return nil
}
