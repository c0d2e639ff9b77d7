package retention_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/retention"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

type testBundle struct {
	t       *testing.T
	st      *sqlite.Store
	runsDir string
	now     time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &testBundle{t: t, st: st, runsDir: filepath.Join(dir, "runs"), now: time.Now()}
}

// run records a run created at created that ended in state at ended (not
// at all when ended is zero), with a folder holding an artifact.
func (b *testBundle) run(state routine.State, created, ended time.Time) *routine.Run {
	b.t.Helper()
	id := ulid.MustNew(ulid.Timestamp(created), ulid.DefaultEntropy()).String()
	run, err := b.st.RunCreate(b.t.Context(), &store.RunCreateParams{ID: id, Routine: "r",
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: created})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.st.LogAppend(b.t.Context(), []routine.LogLine{{RunID: id, Seq: 1, Step: "a", Time: created, Stream: routine.StreamStdout, Text: "hi"}}); err != nil {
		b.t.Fatal(err)
	}
	if !ended.IsZero() {
		run.State, run.StartedAt, run.FinishedAt = state, &created, &ended
		if err := b.st.RunUpdate(b.t.Context(), run); err != nil {
			b.t.Fatal(err)
		}
	}
	art := filepath.Join(b.runsDir, id, "artifacts", "a")
	if err := os.MkdirAll(art, 0o700); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(art, "out.txt"), []byte("12345"), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return run
}

func (b *testBundle) pruner(p retention.Policy) *retention.Pruner {
	b.t.Helper()
	pr, err := retention.New(retention.Config{Store: b.st, Policy: p, RunsDir: b.runsDir, Now: func() time.Time { return b.now }, Limit: 2})
	if err != nil {
		b.t.Fatal(err)
	}
	return pr
}

func (b *testBundle) exists(id string) (run, dir bool) {
	_, err := b.st.RunGet(b.t.Context(), id)
	if err != nil && !errors.Is(err, routine.ErrNotFound) {
		b.t.Fatal(err)
	}
	_, derr := os.Stat(filepath.Join(b.runsDir, id))
	return err == nil, derr == nil
}

func (b *testBundle) lines(id string) int {
	ls, err := b.st.LogList(b.t.Context(), &store.LogListParams{RunID: id})
	if err != nil {
		b.t.Fatal(err)
	}
	return len(ls)
}

// TestPass: a pass deletes the old runs with their folders, the lines
// and artifacts past their ages, and keeps dead and unfinished runs; a
// dry run before it counts the same and deletes nothing.
func TestPass(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := time.Hour
	old := b.run(routine.StateSucceeded, b.now.Add(-50*h), b.now.Add(-49*h))
	dead := b.run(routine.StateDead, b.now.Add(-50*h), b.now.Add(-49*h))
	running := b.run("", b.now.Add(-50*h), time.Time{})
	middle := b.run(routine.StateFailed, b.now.Add(-20*h), b.now.Add(-19*h)) // past logs and artifacts, not runs
	young := b.run(routine.StateSucceeded, b.now.Add(-2*h), b.now.Add(-h))
	// A folder whose run is gone (pruned by another process before its
	// folder went), and one that is not a run's.
	orphan := ulid.MustNew(ulid.Timestamp(b.now.Add(-30*h)), ulid.DefaultEntropy()).String()
	for _, d := range []string{orphan, "scratch"} {
		if err := os.MkdirAll(filepath.Join(b.runsDir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	policy := retention.Policy{
		Runs:      retention.RunsPolicy{MaxAge: retention.Age(48 * h)},
		Logs:      retention.AgePolicy{MaxAge: retention.Age(12 * h)},
		Artifacts: retention.AgePolicy{MaxAge: retention.Age(12 * h)},
	}
	pr := b.pruner(policy)
	dry, err := pr.Pass(t.Context(), retention.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pr.Pass(t.Context(), retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// old (run, its folder); middle's line and folder; the orphan.
	if rep.Runs != 1 || rep.Logs != 1 || rep.Artifacts != 3 || rep.ArtifactBytes != 10 {
		t.Errorf("report %+v: want 1 run, 1 line, 3 folders of 10 bytes", rep)
	}
	if dry.Runs != rep.Runs || dry.Logs != rep.Logs || dry.Artifacts != rep.Artifacts {
		t.Errorf("dry run %+v, pass %+v: want the same counts", dry, rep)
	}
	for _, c := range []struct {
		name      string
		of        *routine.Run
		kept, dir bool
		lines     int
	}{
		{"old", old, false, false, 0},
		{"dead", dead, true, true, 1},
		{"running", running, true, true, 1},
		{"middle", middle, true, false, 0},
		{"young", young, true, true, 1},
	} {
		kept, dir := b.exists(c.of.ID)
		if kept != c.kept || dir != c.dir {
			t.Errorf("%s: run kept %v, folder kept %v; want %v, %v", c.name, kept, dir, c.kept, c.dir)
		}
		if kept {
			if n := b.lines(c.of.ID); n != c.lines {
				t.Errorf("%s: %d lines, want %d", c.name, n, c.lines)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(b.runsDir, "scratch")); err != nil {
		t.Errorf("a folder that is no run's was removed: %v", err)
	}
	again, err := pr.Pass(t.Context(), retention.Options{DeadLetters: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.DeadLetters != 1 || again.Runs != 0 {
		t.Errorf("second pass with dead letters: %+v; want the dead run only", again)
	}
	if run, dir := b.exists(dead.ID); run || dir {
		t.Errorf("dead run kept %v, folder %v after pruning the dead letters", run, dir)
	}
}

func TestInterval(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    retention.Policy
		want time.Duration
	}{
		{retention.Default(), time.Minute},
		{retention.Policy{Runs: retention.RunsPolicy{MaxAge: retention.Age(time.Minute)}}, 6 * time.Second},
		{retention.Policy{}, time.Minute},
	} {
		if got := retention.Interval(c.p); got != c.want {
			t.Errorf("Interval(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
}
