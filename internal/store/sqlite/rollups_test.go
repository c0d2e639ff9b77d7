package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// TestRollupsKeptAcrossRunEnds: rollups summed by the per-run triggers of
// schema 10 (JSON histograms) are carried into the bucket columns of 11,
// and runs that end after the upgrade add to them.
func TestRollupsKeptAcrossRunEnds(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	hour := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return hour.Add(d).UnixMicro() }

	// A store of schema 10, with two runs that ended there.
	db, err := sql.Open("sqlite", URI(path, writerParams(SyncFull)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (
		version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.ReadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version <= 10 {
			if err := apply(ctx, db, m, "state.db", 10); err != nil {
				t.Fatalf("migration %s: %v", m.Name, err)
			}
		}
	}
	insert := `INSERT INTO runs (id, routine, revision, trigger_kind, state, attempt, queued_at, started_at,
		finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of, usage)
		VALUES (?, 'r', 'rev', 'cron', ?, 1, ?, ?, ?, '', '', 100, 50, 1000, '', ?)`
	for _, r := range []struct {
		id, state             string
		queued, start, finish int64
		usage                 any
	}{
		{"01A", "succeeded", at(time.Minute), at(time.Minute + 3*time.Millisecond), at(time.Minute + 1503*time.Millisecond),
			`{"gb_seconds":0.5,"bytes_sent":10,"tokens":{"m":{"input":3,"output":4}}}`},
		{"01B", "failed", at(2 * time.Minute), at(2 * time.Minute), at(2*time.Minute + 30*time.Millisecond), nil},
	} {
		if _, err := db.ExecContext(ctx, insert, r.id, r.state, r.queued, r.start, r.finish, r.usage); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A third run ends through the store, after the upgrade.
	start, end := hour.Add(3*time.Minute), hour.Add(3*time.Minute+1500*time.Millisecond)
	run, err := s.RunCreate(ctx, &store.RunCreateParams{ID: "01C", Routine: "r", Trigger: routine.TriggerInfo{Kind: "cron"},
		QueuedAt: start, State: routine.StateRunning, Worker: "w", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	run.State, run.StartedAt, run.FinishedAt, run.CPUUserMs = routine.StateSucceeded, &start, &end, 1000
	run.Usage = routine.Usage{GBSeconds: 0.25, Tokens: map[string]routine.Tokens{"m": {Input: 1, Output: 1}}}
	if err := s.RunUpdate(ctx, run); err != nil {
		t.Fatal(err)
	}

	var want store.Aggregate
	want.ByState = map[routine.State]int64{routine.StateSucceeded: 2, routine.StateFailed: 1}
	for _, d := range []time.Duration{1500 * time.Millisecond, 30 * time.Millisecond, 1500 * time.Millisecond} {
		want.Duration.Observe(d)
	}
	for _, d := range []time.Duration{3 * time.Millisecond, 0, 0} {
		want.QueueWait.Observe(d)
	}
	for _, width := range []time.Duration{store.RollupMinute, store.RollupHour} {
		// A range of whole hours reads hours; one of minutes, minutes.
		until := hour.Add(time.Hour)
		if width == store.RollupMinute {
			until = hour.Add(10 * time.Minute)
		}
		list, err := s.Stats(ctx, &store.StatsParams{Since: hour, Until: until})
		if err != nil || len(list) != 1 {
			t.Fatalf("Stats = %v, %v; want the stats of r", list, err)
		}
		got := list[0].Totals
		if got.ByState[routine.StateSucceeded] != 2 || got.ByState[routine.StateFailed] != 1 {
			t.Errorf("%v: by state %v, want %v", width, got.ByState, want.ByState)
		}
		for _, h := range []struct {
			name      string
			got, want store.Histogram
		}{{"duration", got.Duration, want.Duration}, {"queue wait", got.QueueWait, want.QueueWait}} {
			if h.got.Sum != h.want.Sum || len(h.got.Counts) != len(h.want.Counts) {
				t.Fatalf("%v: %s %+v, want %+v", width, h.name, h.got, h.want)
			}
			for i := range h.want.Counts {
				if h.got.Counts[i] != h.want.Counts[i] {
					t.Errorf("%v: %s bucket %d = %d, want %d", width, h.name, i, h.got.Counts[i], h.want.Counts[i])
				}
			}
		}
		if got.CPUSeconds != 1.3 {
			t.Errorf("%v: CPU %v s, want 1.3", width, got.CPUSeconds)
		}
		if u := got.Usage; u.GBSeconds != 0.75 || u.BytesSent != 10 || u.Tokens["m"] != (routine.Tokens{Input: 4, Output: 5}) {
			t.Errorf("%v: usage %+v, want 0.75 GB-s, 10 bytes sent, 4+5 tokens of m", width, u)
		}
	}
}

// TestRunEndsOfAnUndoneWrite: a write of a group commit that fails after
// ending a run is undone alone, its run end with it; the run end of the
// other write of the batch is summed, and run_ends is left empty.
func TestRunEndsOfAnUndoneWrite(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hour := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	ended := map[string]*routine.Run{}
	for _, id := range []string{"01UNDONE", "01KEPT"} {
		run, err := s.RunCreate(ctx, &store.RunCreateParams{ID: id, Routine: "r", Trigger: routine.TriggerInfo{Kind: "cron"},
			QueuedAt: hour, State: routine.StateRunning, Worker: "w", Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		end := hour.Add(time.Second)
		run.State, run.StartedAt, run.FinishedAt = routine.StateSucceeded, &hour, &end
		ended[id] = run
	}
	undone := errors.New("undone after the run ended")
	ops := []*writeOp{
		{ctx: ctx, fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := s.runUpdateIn(ctx, tx, ended["01UNDONE"]); err != nil {
				return err
			}
			return undone
		}},
		{ctx: ctx, fn: func(ctx context.Context, tx *sql.Tx) error { return s.runUpdateIn(ctx, tx, ended["01KEPT"]) }},
	}
	s.gc.commit(ops)
	if !errors.Is(ops[0].err, undone) || ops[1].err != nil {
		t.Fatalf("errors %v, %v; want the first write's own and none", ops[0].err, ops[1].err)
	}
	list, err := s.Stats(ctx, &store.StatsParams{Since: hour, Until: hour.Add(time.Hour)})
	if err != nil || len(list) != 1 {
		t.Fatalf("Stats = %v, %v", list, err)
	}
	if got := list[0].Totals.ByState; got[routine.StateSucceeded] != 1 || len(got) != 1 {
		t.Errorf("by state %v, want the one run kept", got)
	}
	if run, err := s.RunGet(ctx, "01UNDONE"); err != nil || run.State != routine.StateRunning {
		t.Errorf("the undone write's run: %v, %v; want it running still", run, err)
	}
	var left int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM run_ends").Scan(&left); err != nil || left != 0 {
		t.Errorf("run_ends holds %d rows (%v), want none after the commit", left, err)
	}
}
