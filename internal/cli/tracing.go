package cli

import (
	"context"
	"log/slog"

	"github.com/routines-dev/routines/internal/tracing"
)

// tracing builds the tracer provider of a daemon playing role (serve,
// server, worker) from the OTEL_* variables, and logs where its spans go.
// The daemon's Stop flushes it.
func (g *globals) tracing(ctx context.Context, role string, logger *slog.Logger) (*tracing.Provider, error) {
	version := g.deps.Version
	if version == "" && g.deps.Build != nil && g.deps.Build.Main.Version != "(devel)" {
		version = g.deps.Build.Main.Version
	}
	p, err := tracing.New(ctx, tracing.Config{Getenv: g.getenv, Role: role, Version: version})
	if err != nil {
		return nil, invalid(err)
	}
	if p.Enabled() {
		logger.Info("exporting traces", "endpoint", p.Endpoint)
	}
	return p, nil
}
