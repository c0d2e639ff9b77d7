// Package daemon composes the long-running services of Routines — the
// executor that works the queue, the sources of triggers, the reload of
// routine files, the API — under one lifecycle, so that `routines serve`
// (local), `routines server` and `routines worker` (remote) are
// compositions of the same services rather than three programs.
package daemon

import (
	"context"
	"errors"
	"fmt"
)

// Service is a long-running part of a daemon. Start returns once the
// service works (or failed to start); Stop returns once it stopped, and
// ctx bounds how long it may take to finish what it was doing.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Group runs services as one: Start starts them in order, Stop stops
// the started ones in reverse order, so a service stops before those it
// relies on.
type Group struct {
	names    []string
	services []Service
	started  int
}

// Add appends a service, named for errors.
func (g *Group) Add(name string, s Service) {
	g.names = append(g.names, name)
	g.services = append(g.services, s)
}

// Start starts the services in order. When one fails, those started are
// stopped again, and the error names the one that failed.
func (g *Group) Start(ctx context.Context) error {
	for i, s := range g.services[g.started:] {
		if err := s.Start(ctx); err != nil {
			stopErr := g.Stop(context.WithoutCancel(ctx))
			return errors.Join(fmt.Errorf("start %s: %w", g.names[g.started+i], err), stopErr)
		}
		g.started++
	}
	return nil
}

// Stop stops the started services in reverse order, each given ctx, and
// returns their errors joined.
func (g *Group) Stop(ctx context.Context) error {
	var errs []error
	for g.started > 0 {
		g.started--
		if err := g.services[g.started].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", g.names[g.started], err))
		}
	}
	return errors.Join(errs...)
}

// Func is a Service made of two functions; a nil one does nothing.
type Func struct {
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start calls OnStart.
func (f Func) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

// Stop calls OnStop.
func (f Func) Stop(ctx context.Context) error {
	if f.OnStop == nil {
		return nil
	}
	return f.OnStop(ctx)
}
