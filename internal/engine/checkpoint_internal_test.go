package engine

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// failing is a store whose checkpoints fail the first n times, with err
// (a refused connection when nil).
type failing struct {
	store.Store
	n   atomic.Int32
	err error
}

func (f *failing) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	if f.n.Add(-1) >= 0 {
		if f.err != nil {
			return f.err
		}
		return errors.New("connection refused")
	}
	return f.Store.Checkpoint(ctx, p)
}

// openRun opens a store and records run id in it.
func openRun(t *testing.T, id string) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.RunCreate(t.Context(), &store.RunCreateParams{ID: id, Routine: "r", QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return st
}

// A store that cannot write (a full disk) is waited for past the patience
// given to others: the next step starts only once the records before it
// are stored, however long that takes.
func TestCheckpointWaitsForTheStoreToWrite(t *testing.T) {
	t.Parallel()
	const id = "01TESTUNWRITABLE0000000000"
	st := openRun(t, id)
	f := &failing{Store: st, err: &store.UnwritableError{Cause: "disk full", Path: "state.db", Err: errors.New("database or disk is full (13)")}}
	f.n.Store(commitTries + 2)
	c := newCheckpointer(t.Context(), t.Context(), f, slog.New(slog.DiscardHandler), id, "")
	c.patience = time.Millisecond
	c.finished(&routine.StepRun{RunID: id, Phase: routine.PhaseMain, ID: "a", State: routine.StateSucceeded})
	if err := c.settle(); err != nil {
		t.Fatal(err)
	}
	if n := f.n.Load(); n >= 0 {
		t.Fatalf("settle returned with %d refusals to come: the run went on without its records", n+1)
	}
	if recs, err := st.StepList(t.Context(), id); err != nil || len(recs) != 1 || recs[0].State != routine.StateSucceeded {
		t.Fatalf("records after settle: %+v, %v", recs, err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
}

// A batch given up (the daemon no longer waits for the run) is written
// with the next one: the final record of a step that finished is not
// lost, and one queued again since wins over it.
func TestCheckpointGivenUpIsWrittenLater(t *testing.T) {
	t.Parallel()
	const id = "01TESTGIVENUP0000000000000"
	st := openRun(t, id)
	f := &failing{Store: st}
	f.n.Store(commitTries)
	hurry, cancel := context.WithCancel(t.Context())
	cancel()
	c := newCheckpointer(t.Context(), hurry, f, slog.New(slog.DiscardHandler), id, "")
	c.finished(&routine.StepRun{RunID: id, Phase: routine.PhaseMain, ID: "a", State: routine.StateSucceeded})
	c.step(&routine.StepRun{RunID: id, Phase: routine.PhaseMain, ID: "b", State: routine.StateRunning})
	c.log(routine.LogLine{RunID: id, Seq: 1, Step: "a", Stream: routine.StreamStdout, Text: "from a", Time: time.Now()})
	if err := c.settle(); err != nil {
		t.Fatalf("settle after a batch given up: %v, want nil: the run goes on", err)
	}
	c.finished(&routine.StepRun{RunID: id, Phase: routine.PhaseMain, ID: "b", State: routine.StateSucceeded})
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.StepList(t.Context(), id)
	if err != nil || len(recs) != 2 || recs[0].ID != "a" || recs[0].State != routine.StateSucceeded ||
		recs[1].ID != "b" || recs[1].State != routine.StateSucceeded {
		t.Fatalf("records: %+v, %v; want a then b, succeeded", recs, err)
	}
	if lines, err := st.LogList(t.Context(), &store.LogListParams{RunID: id}); err != nil || len(lines) != 1 {
		t.Fatalf("log lines: %+v, %v; want the one of a", lines, err)
	}
}
