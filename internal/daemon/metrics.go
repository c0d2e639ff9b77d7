package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
)

// The metrics observe the engine's runs as its Observer.
var _ engine.Observer = (*metrics.Metrics)(nil)

// instrument gives m the hooks of the parts every daemon has: the runs
// its queue takes, the secrets its resolver (when there is one) resolves.
// It returns m, or new metrics when m is nil.
func instrument(m *metrics.Metrics, logger *slog.Logger, queue *scheduler.Queue, res *secrets.Resolver) *metrics.Metrics {
	if m == nil {
		m = metrics.New(metrics.Config{Logger: logger})
	}
	queue.OnEnqueued(m.Enqueued)
	if res != nil {
		res.OnResolved(m.SecretResolved)
	}
	return m
}

// metricsListener is the service that serves GET /metrics on ln, for a
// daemon without the API (a worker): unauthenticated, as exporters are,
// so ln should be reachable only by the scrapers. It serves GET /healthz
// too, for a liveness probe: 200 while the process serves, draining
// included (the listener stops last).
func metricsListener(m *metrics.Metrics, ln net.Listener, logger *slog.Logger, served chan<- error) Service {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return Func{
		OnStart: func(context.Context) error {
			go func() {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					select {
					case served <- err:
					default: // the daemon is told of a failure already
					}
				}
			}()
			return nil
		},
		OnStop: func(context.Context) error { return shutdown(srv) },
	}
}
