package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/trigger"
)

// Triggers is the service of the sources of triggers (schedules, file
// events, mail): it hands each source the routines the daemon serves.
type Triggers struct {
	sources []trigger.Source
}

// NewTriggers builds one source of each family in kinds with env.
func NewTriggers(kinds []trigger.NewSource, env trigger.SourceEnv) *Triggers {
	t := &Triggers{}
	for _, k := range kinds {
		t.sources = append(t.sources, k(env))
	}
	return t
}

// Start starts every source.
func (t *Triggers) Start(ctx context.Context) error {
	for i, s := range t.sources {
		if err := s.Start(ctx); err != nil {
			for _, started := range t.sources[:i] {
				started.Stop(ctx)
			}
			return err
		}
	}
	return nil
}

// Stop stops every source: no trigger fires after it returns.
func (t *Triggers) Stop(ctx context.Context) error {
	var errs []error
	for _, s := range t.sources {
		errs = append(errs, s.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Set starts r's triggers in every source, replacing those it had. When
// a source finds them invalid, the sources already given r get its
// previous revision back (prev; nil: none), so r keeps one consistent
// set of triggers.
func (t *Triggers) Set(ctx context.Context, r, prev *routine.Routine) error {
	for i, s := range t.sources {
		if err := s.Set(ctx, r); err != nil {
			for _, done := range t.sources[:i] {
				if prev != nil {
					done.Set(ctx, prev)
				} else {
					done.Remove(r.Name)
				}
			}
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	return nil
}

// Remove stops the triggers of the routine called name.
func (t *Triggers) Remove(name string) {
	for _, s := range t.sources {
		s.Remove(name)
	}
}
