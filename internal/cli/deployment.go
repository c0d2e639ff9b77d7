package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/daemon"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
)

// remoteOptions are the flags server and worker share.
type remoteOptions struct {
	db              string
	cacheDir        string
	cacheMiB        int
	workDir         string
	grace           time.Duration
	lease           time.Duration
	requeueAfter    time.Duration
	allowUnconfined bool
	poll            time.Duration
	artifacts       string
	// region and labels (comma-separated) are the placement of the
	// workers: of a worker, or of a server's --workers.
	region, labels string
}

func (o *remoteOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "", "the deployment's store: postgres://user:password@host:5432/routines (env ROUTINES_DB); sslmode in the URL is honoured")
	f.StringVar(&o.cacheDir, "cache-dir", "", "where pushed revisions are kept extracted (default: the user cache directory/routines/bundles)")
	f.IntVar(&o.cacheMiB, "cache-size", int(bundle.DefaultCacheBytes>>20), "MiB of extracted revisions the cache keeps; the least recently used go first (revisions in use stay)")
	f.StringVar(&o.workDir, "work-dir", "", "where runs keep their workspaces (default: the user cache directory/routines/work)")
	durationVar(f, &o.grace, "grace", 30*time.Second, "on shutdown, how long running steps may finish before their runs go back to the queue")
	durationVar(f, &o.lease, "lease", 30*time.Second, "lease of a claimed run: a run whose worker stops renewing it is taken over this long after")
	durationVar(f, &o.requeueAfter, "requeue-after", 5*time.Second, "a retry backoff longer than this puts the run back in the queue instead of holding a slot (0: never)")
	f.BoolVar(&o.allowUnconfined, "allow-unconfined", false, "run steps without Landlock when the kernel does not offer it")
	durationVar(f, &o.poll, "poll", 5*time.Second, "how often the pushed revisions are read again")
	f.StringVar(&o.artifacts, "artifacts", "", "where the artifacts of runs go, so that a run resumed on another worker finds them: postgres (the --db database, 8 MiB per artifact), s3://bucket/prefix?endpoint=URL&region=R, or local:/shared/dir (env ROUTINES_ARTIFACTS; default: none, each worker's work directory)")
}

// placementFlags adds --region and --labels, which say what workers
// have; whose says which (this worker's, or the server's --workers').
func (o *remoteOptions) placementFlags(cmd *cobra.Command, whose string) {
	f := cmd.Flags()
	f.StringVar(&o.region, "region", "", whose+" region: routines whose region: is this one, or unset, run here (env ROUTINES_REGION)")
	f.StringVar(&o.labels, "labels", "", whose+" labels, comma-separated, such as gpu,ssd: routines whose labels: are all among them run here (env ROUTINES_LABELS)")
}

// placement returns the region and labels of the flags, else of the
// environment, checked as a routine's region: and labels: are.
func (g *globals) placement(o *remoteOptions) (routine.Placement, error) {
	region, labels := o.region, o.labels
	if region == "" {
		region = g.getenv("ROUTINES_REGION")
	}
	if labels == "" {
		labels = g.getenv("ROUTINES_LABELS")
	}
	if region != "" && !routine.ValidLabel(region) {
		return routine.Placement{}, invalidf("--region %q: want %s, such as eu-west, as the region: of routines", region, routine.LabelRule)
	}
	var list []string
	for _, l := range strings.Split(labels, ",") {
		switch l = strings.TrimSpace(l); {
		case l == "":
		case !routine.ValidLabel(l):
			return routine.Placement{}, invalidf("--labels: label %q: want %s, such as gpu, as the labels: of routines", l, routine.LabelRule)
		default:
			list = append(list, l)
		}
	}
	return routine.NewPlacement(region, list), nil
}

// serverOptions are the flags of server.
type serverOptions struct {
	remoteOptions
	apiOptions
	workers int
}

func newServerCmd(g *globals) *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "server --db postgres://…",
		Short: "Serve a deployment: the API, pushes, webhooks and events, schedules and mail, on PostgreSQL",
		Long: "server serves the JSON API (/v1), takes pushed routines (routines push), receives webhooks, Slack commands\n" +
			"and events, and fires the cron, every and email triggers of the pushed routines, all through the PostgreSQL\n" +
			"store of --db: run as many replicas as you like. With --workers N it also executes runs; else `routines worker`\n" +
			"processes do. Docs: " + docsURL + "/remote.md",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return g.runRemote(ctx, &o.remoteOptions, o)
		},
	}
	o.remoteOptions.flags(cmd)
	o.placementFlags(cmd, "the --workers'")
	o.apiOptions.flags(cmd, true)
	cmd.Flags().IntVar(&o.workers, "workers", 0, "runs this server also executes at once (0: none; workers execute them)")
	return cmd
}

// workerOptions are the flags of worker.
type workerOptions struct {
	remoteOptions
	slots       int
	metricsAddr string
}

func newWorkerCmd(g *globals) *cobra.Command {
	o := &workerOptions{}
	cmd := &cobra.Command{
		Use:   "worker --db postgres://…",
		Short: "Execute the runs of a deployment, claimed from PostgreSQL",
		Long: "worker claims runs from the PostgreSQL store of --db and executes them, each with the revision it was\n" +
			"queued with (fetched once, then cached). Run as many as you like, on any machines; each routine's\n" +
			"concurrency.max holds across all of them. A routine with region: or labels: runs only on workers\n" +
			"started with that --region and all those --labels. SIGTERM lets running steps finish for --grace, then puts\n" +
			"their runs back in the queue for another worker. Docs: " + docsURL + "/remote.md",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return g.runRemote(ctx, &o.remoteOptions, o)
		},
	}
	o.remoteOptions.flags(cmd)
	o.placementFlags(cmd, "this worker's")
	cmd.Flags().IntVar(&o.slots, "slots", 32, "runs executed at once (each run step is a process)")
	cmd.Flags().StringVar(&o.metricsAddr, "metrics-addr", "", "address to serve Prometheus metrics on, at /metrics, without a token, such as 127.0.0.1:9464 (env ROUTINES_METRICS_ADDR; default: none)")
	return cmd
}

// runRemote runs a server (with a *serverOptions) or a worker (with a
// *workerOptions) until ctx ends, then stops it within the grace.
func (g *globals) runRemote(ctx context.Context, o *remoteOptions, role any) error {
	if o.db == "" {
		o.db = g.getenv("ROUTINES_DB")
	}
	if o.db == "" {
		return invalidf("no store: give --db postgres://user:password@host:5432/routines (or ROUTINES_DB)")
	}
	cache, work, err := remoteDirs(o)
	if err != nil {
		return err
	}
	placement, err := g.placement(o)
	if err != nil {
		return err
	}
	st, err := g.openStoreURL(ctx, o.db)
	if err != nil {
		return fmt.Errorf("open %s: %w", store.Redact(o.db), err)
	}
	defer st.Close()
	logger := slog.New(slog.NewTextHandler(g.deps.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logLayers(logger)
	if o.cacheMiB < 1 {
		return invalidf("--cache-size %d: want at least 1 (MiB)", o.cacheMiB)
	}
	cacheStore, err := bundle.OpenCache(cache, bundle.CacheOptions{MaxBytes: int64(o.cacheMiB) << 20, Logger: logger})
	if err != nil {
		return err
	}
	if o.artifacts == "" {
		o.artifacts = g.getenv("ROUTINES_ARTIFACTS")
	}
	arts, closeArts, err := g.openArtifacts(ctx, o.artifacts, st)
	if err != nil {
		return err
	}
	defer closeArts()
	resolver, err := g.secretResolver(st, project.Project{})
	if err != nil {
		return err
	}
	keys, err := secrets.KeySourceFromEnv(g.getenv)
	if err != nil {
		return err
	}
	cfg := daemon.RemoteConfig{
		Store: st, Secrets: resolver, Kinds: g.deps.Kinds, Logger: logger, Warn: g.deps.Stderr,
		Cache: cacheStore, Poll: o.poll, Triggers: g.deps.Triggers, Vault: secrets.NewBuiltin(st, keys),
		WorkDir: work, Lease: o.lease, RequeueAfter: o.requeueAfter, Artifacts: arts, Placement: placement,
		AllowMissing: g.allowMissing, Metrics: g.newMetrics(logger),
		Check: func(r *routine.Routine, get func(string) (*routine.Routine, bool)) error {
			if err := g.checkSecrets(r); err != nil {
				return err
			}
			return checkCalls(r, get)
		},
	}
	what := "worker"
	switch role := role.(type) {
	case *serverOptions:
		if role.workers < 0 {
			return invalidf("--workers %d: want 0 or more", role.workers)
		}
		if role.workers == 0 && (o.region != "" || o.labels != "") {
			return invalidf("--region and --labels are those of the server's --workers, and it has none: give --workers N, or drop them")
		}
		if err := role.apiOptions.check(g); err != nil {
			return err
		}
		ln, err := role.listen(g, "push and run routines")
		if err != nil {
			return err
		}
		cfg.Listener, cfg.Workers, cfg.Token, cfg.MaxQueued, cfg.Limits, cfg.Alerts = ln, role.workers, role.token, role.maxQueued, role.limits, role.alerts
		cfg.Costs, cfg.RateLimits, cfg.TLS = role.costConfig, role.rates, role.tlsConfig()
		what = "server on " + role.scheme() + "://" + ln.Addr().String()
		if err := g.bootstrapToken(ctx, st); err != nil {
			return err
		}
	case *workerOptions:
		if role.slots < 1 {
			return invalidf("--slots %d: want at least 1", role.slots)
		}
		cfg.Workers = role.slots
		if role.metricsAddr == "" {
			role.metricsAddr = g.getenv("ROUTINES_METRICS_ADDR")
		}
		if role.metricsAddr != "" {
			ln, err := net.Listen("tcp", role.metricsAddr)
			if err != nil {
				return fmt.Errorf("listen for metrics: %w", err)
			}
			cfg.MetricsListener = ln
		}
	}
	if cfg.Workers > 0 {
		if cfg.Unconfined, err = g.hostConfinement(o.allowUnconfined); err != nil {
			return invalid(err)
		}
		if arts == nil {
			logger.Warn(artifactsNote)
		}
	}
	played := "worker"
	if cfg.Listener != nil {
		played = "server"
	}
	if cfg.Tracing, err = g.tracing(ctx, played, logger); err != nil {
		return err
	}
	d, err := daemon.NewRemote(cfg)
	if err != nil {
		return errors.Join(err, cfg.Tracing.Shutdown(context.Background()))
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	if role, ok := role.(*serverOptions); ok {
		defer role.reloadOnHangup(logger)()
	}
	where := ""
	if cfg.Workers > 0 && !placement.IsZero() {
		where = ", " + placement.String()
	}
	if cfg.MetricsListener != nil {
		where += ", metrics on http://" + cfg.MetricsListener.Addr().String() + "/metrics"
	}
	fmt.Fprintf(g.deps.Stdout, "%s up (%s%s, store %s)\n", what, d.ID, where, store.Redact(o.db))
	stop := func() error {
		graceCtx, cancel := context.WithTimeout(context.Background(), o.grace)
		defer cancel()
		return d.Stop(graceCtx)
	}
	select {
	case <-ctx.Done():
	case err := <-d.Failed():
		return errors.Join(fmt.Errorf("serve: %w", err), stop())
	}
	fmt.Fprintf(g.deps.Stdout, "shutting down: waiting up to %s for running steps\n", o.grace)
	if err := stop(); err != nil {
		return err
	}
	fmt.Fprintln(g.deps.Stdout, "stopped")
	return nil
}

// remoteDirs returns the bundle cache and the work directory of a remote
// daemon: the flags, else under the user's cache directory.
func remoteDirs(o *remoteOptions) (cache, work string, err error) {
	cache, work = o.cacheDir, o.workDir
	if cache == "" || work == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", "", invalidf("no cache directory (%v): give --cache-dir and --work-dir", err)
		}
		if cache == "" {
			cache = filepath.Join(base, "routines", "bundles")
		}
		if work == "" {
			work = filepath.Join(base, "routines", "work")
		}
	}
	return cache, work, nil
}

// bootstrapToken gives a deployment with no token yet its first: an admin
// of the default namespace named bootstrap, whose value is
// $ROUTINES_BOOTSTRAP_TOKEN, else a new one printed this once. The store
// keeps only its hash.
func (g *globals) bootstrapToken(ctx context.Context, st store.Store) error {
	value := g.getenv("ROUTINES_BOOTSTRAP_TOKEN")
	if value != "" && len(value) < 16 {
		return invalidf("ROUTINES_BOOTSTRAP_TOKEN is %d characters: an admin token wants at least 16 random ones (or leave it unset, and the server makes one)", len(value))
	}
	generated := value == ""
	if generated {
		value = server.NewToken()
	}
	created, err := st.TokenBootstrap(ctx, &store.TokenCreateParams{
		ID: ulid.Make().String(), Name: "bootstrap", Hash: server.HashToken(value), Role: store.RoleAdmin,
		Namespace: store.DefaultNamespace, Now: time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	if created && generated {
		fmt.Fprintf(g.deps.Stderr, "bootstrap admin token, shown this once (keep it: `routines tokens create` makes the others):\n\n    %s\n\n", value)
	}
	return nil
}
