package sqlite_test

import (
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// fileSize is the size of the store's file and its write-ahead log.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// fill records runs that ended at end, each with lines log lines of a
// few hundred bytes.
func fill(t *testing.T, s *sqlite.Store, runs, lines int, end time.Time) {
	t.Helper()
	ctx := t.Context()
	text := strings.Repeat("x", 300)
	for range runs {
		run := createRun(t, ctx, s, "r")
		var ls []routine.LogLine
		for i := range lines {
			ls = append(ls, routine.LogLine{RunID: run.ID, Step: "a", Seq: int64(i + 1), Time: end, Stream: routine.StreamStdout, Text: text})
		}
		if err := s.LogAppend(ctx, ls); err != nil {
			t.Fatal(err)
		}
		run.State, run.StartedAt, run.FinishedAt = routine.StateSucceeded, &end, &end
		if err := s.RunUpdate(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVacuumShrinks: a new store frees pages incrementally, so pruning
// then vacuuming gives the space back to the file system.
func TestVacuumShrinks(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	end := time.Now().Add(-48 * time.Hour)
	fill(t, s, 300, 40, end)
	st, err := s.Vacuum(b.ctx, 0)
	if err != nil || !st.Incremental {
		t.Fatalf("Vacuum = %+v, %v; want a new store in incremental mode", st, err)
	}
	checkpoint(t, b)
	full := fileSize(t, b.path)
	if full < 3<<20 {
		t.Fatalf("the store holds %d bytes, want a few MB to prune", full)
	}
	for {
		res, err := s.Prune(b.ctx, &store.PruneParams{Kind: store.PruneRuns, Before: time.Now().Add(-time.Hour), Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if !res.More {
			break
		}
	}
	for {
		st, err = s.Vacuum(b.ctx, 64)
		if err != nil {
			t.Fatal(err)
		}
		if st.FreePages == 0 {
			break
		}
	}
	checkpoint(t, b)
	if after := fileSize(t, b.path); after > full/4 {
		t.Errorf("after pruning and vacuuming the store holds %d bytes of %d", after, full)
	}
}

// checkpoint folds the write-ahead log into the file, where the pages an
// incremental vacuum gave up are cut off its end.
func checkpoint(t *testing.T, b *testBundle) {
	t.Helper()
	if _, err := b.raw(t).ExecContext(b.ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
}

// TestCompactTurnsOnIncrementalVacuum: a store made before incremental
// vacuum (its tables created first) reuses freed pages but keeps its
// size, until Compact rewrites it.
func TestCompactTurnsOnIncrementalVacuum(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	path := b.path + ".old"
	db, err := sql.Open("sqlite", sqlite.URI(path, "_pragma=journal_mode(WAL)"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(b.ctx, "CREATE TABLE before_retention (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlite.Open(b.ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s, 100, 40, time.Now().Add(-48*time.Hour))
	if st, err := s.Vacuum(b.ctx, 100); err != nil || st.Incremental {
		t.Fatalf("Vacuum of an old store = %+v, %v; want not incremental", st, err)
	}
	if err := s.Compact(b.ctx); err != nil {
		t.Fatal(err)
	}
	st, err := s.Vacuum(b.ctx, 0)
	if err != nil || !st.Incremental {
		t.Fatalf("Vacuum after Compact = %+v, %v; want incremental", st, err)
	}
	// The store works on.
	fill(t, s, 1, 1, time.Now())
}

// The trail of actions stays append-only under retention: a record newer
// than the horizon cannot be removed or changed, by any writer of the
// file, and the horizon never moves back.
func TestAuditLogHorizon(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	now := time.Now()
	for _, tm := range []time.Time{now.Add(-400 * 24 * time.Hour), now} {
		if err := s.ActionAppend(b.ctx, &store.Action{Time: tm, Actor: "local", Role: store.RoleAdmin, Namespace: store.DefaultNamespace,
			Source: "127.0.0.1", Action: "invoke", Target: "r", Outcome: store.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Prune(b.ctx, &store.PruneParams{Kind: store.PruneAudit, Before: now.Add(-365 * 24 * time.Hour), Now: now}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", sqlite.URI(b.path, "_pragma=busy_timeout(10000)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(b.ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
		t.Fatalf("records after pruning a year: %d, %v; want the recent one", n, err)
	}
	for _, q := range []string{
		"DELETE FROM audit_log",
		"UPDATE audit_log SET outcome = 'denied'",
		"UPDATE audit_log_horizon SET before = 0",
		"DELETE FROM audit_log_horizon",
		// Moving the horizon forward is retention's own path; on its own
		// it removes nothing, and a delete past it is still refused.
		"UPDATE audit_log_horizon SET before = before + 1; DELETE FROM audit_log WHERE time >= (SELECT before FROM audit_log_horizon)",
	} {
		if _, err := db.ExecContext(b.ctx, q); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
	if err := db.QueryRowContext(b.ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
		t.Fatalf("records after the attempts: %d, %v; want 1", n, err)
	}
}
