// Package metrics owns the Prometheus metrics of a daemon: one registry
// per daemon (never the client library's global one, so that tests and
// daemons in one process keep theirs apart), the collectors of runs,
// steps, the queue, concurrency, trigger ingress, secret resolutions and
// worker slots, and the handler of GET /metrics. The engine, the
// scheduler and the secrets resolver do not import it: the daemon hands
// their hooks the methods of a *Metrics.
//
// Every label value is bounded by the routine files (routine and step
// names, trigger kinds) or by this package (states, reasons, outcomes):
// no run id, trigger payload or request value becomes a label.
package metrics

import (
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/routines-dev/routines/internal/store"
)

// namespace prefixes every metric of Routines.
const namespace = "routines"

// Config is what Metrics are built from; every field is optional.
type Config struct {
	// Version is the binary's version, the version label of
	// routines_build_info; "devel" when empty.
	Version string
	// Logger hears of what a scrape could not collect (the store did not
	// answer); discarded when nil.
	Logger *slog.Logger
}

// Metrics are the collectors of one daemon, in a registry of their own.
// They are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	runsStarted *prometheus.CounterVec
	runsEnded   *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	stepDur     *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec
	accepted    *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	secrets     *prometheus.CounterVec
}

// durationBuckets are the bounds of the duration histograms, in seconds:
// store.HistogramBounds, so that what Prometheus and `routines stats`
// compute from their histograms agrees.
var durationBuckets = func() []float64 {
	b := make([]float64, len(store.HistogramBounds))
	for i, d := range store.HistogramBounds {
		b[i] = d.Seconds()
	}
	return b
}()

// New returns the metrics of a daemon, registered with the Go runtime
// and process collectors and routines_build_info in a new registry.
func New(cfg Config) *Metrics {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "devel"
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: durationBuckets}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: cfg.Logger,
		runsStarted: counter("runs_started_total",
			"Runs that started executing in this process, on their first attempt.", "routine"),
		runsEnded: counter("runs_total",
			"Runs that ended in this process, by final state.", "routine", "state"),
		runDuration: histogram("run_duration_seconds",
			"How long runs took, from the start of their last attempt to their end.", "routine"),
		stepDur: histogram("step_duration_seconds",
			"How long steps took, all their attempts and retry waits included, by final state; skipped steps are not counted.", "routine", "step", "phase", "state"),
		queueWait: histogram("queue_wait_seconds",
			"How long runs waited from queued to their first start, by the region of the worker that started them (\"\" for none); sub-runs, which never wait, are not counted.", "routine", "region"),
		accepted: counter("trigger_accepted_total",
			"Firings of triggers (and API calls, events, replays) that queued a run.", "trigger", "routine"),
		rejected: counter("trigger_rejected_total",
			"Firings and requests of triggers that queued no run, by reason.", "trigger", "routine", "reason"),
		secrets: counter("secret_resolutions_total",
			"Resolutions of secrets, for runs and triggers, by provider and outcome (ok, not_found, error).", "routine", "provider", "outcome"),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "Always 1; its labels say which build of routines runs.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
		m.runsStarted, m.runsEnded, m.runDuration, m.stepDur, m.queueWait,
		m.accepted, m.rejected, m.secrets,
	)
	return m
}

// Registry returns the registry the metrics are in, to gather them or to
// register more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text (or OpenMetrics)
// format. What a collector could not gather (the store did not answer)
// is logged and left out; the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       scrapeTimeout,
	})
}

// scrapeTimeout bounds a scrape, the store's answers included.
const scrapeTimeout = 10 * time.Second
