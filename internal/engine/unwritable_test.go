package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/engine"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// fullDisk is a store whose state writes the storage refuses, refusals
// times.
type fullDisk struct {
	store.Store
	refusals atomic.Int32
}

func (s *fullDisk) StatePut(ctx context.Context, p *store.StatePutParams) (bool, error) {
	if s.refusals.Add(-1) >= 0 {
		return false, &store.UnwritableError{Cause: "disk full", Path: "state.db", Err: errors.New("database or disk is full (13)")}
	}
	return s.Store.StatePut(ctx, p)
}

// A step whose own write the store refuses (a full disk) is not failed:
// it is tried again until the store writes, and the tries do not count.
func TestStepWaitsForTheStoreToWrite(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	full := &fullDisk{Store: b.store}
	full.refusals.Store(5)
	clk := clock.NewAutoAdvance(time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC))
	e := engine.New(engine.Config{
		Store: full, Kinds: stepkind.NewRegistry(steps.StateKind{}),
		StateDir: filepath.Join(b.dir, ".routines"), Clock: clk,
	})
	run, recs := b.run(t, context.Background(), e, `
name: keep
steps:
  - id: put
    state: { put: k, value: v }
`)
	if run.State != routine.StateSucceeded || len(recs) != 1 {
		t.Fatalf("run %s (%+v), steps %s; want succeeded", run.State, run.Error, stepStates(recs))
	}
	if recs[0].Attempts != 1 {
		t.Errorf("the step counted %d tries, want 1: those the store refused do not count", recs[0].Attempts)
	}
	if n := full.refusals.Load(); n >= 0 {
		t.Fatalf("the store refused %d writes fewer than it was set to", n+1)
	}
}
