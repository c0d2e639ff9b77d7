package sqlite_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// BenchmarkMillion times the runs page and stats on a store of a million
// runs (storetest.BenchmarkMillion; set ROUTINES_BENCH_1M=1). The runs
// are inserted in a few large transactions on a connection of their own,
// the schema's triggers filling run_tags and run_ends, which the store
// then folds into the rollups.
func BenchmarkMillion(b *testing.B) {
	n := storetest.MillionCount(b)
	// ROUTINES_BENCH_1M_DB keeps the store in that file, loaded once.
	path := os.Getenv("ROUTINES_BENCH_1M_DB")
	_, statErr := os.Stat(path)
	if path == "" {
		path = filepath.Join(b.TempDir(), "state.db")
	}
	s, err := sqlite.Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if statErr != nil {
		start := time.Now()
		if err := loadRuns(b, path, n); err != nil {
			b.Fatal(err)
		}
		if err := sqlite.FoldRunEnds(b.Context(), s); err != nil {
			b.Fatal(err)
		}
		b.Logf("%d runs loaded in %v", n, time.Since(start).Round(time.Millisecond))
	}
	storetest.BenchmarkMillion(b, s)
}

func loadRuns(b *testing.B, path string, n int) error {
	db, err := sql.Open("sqlite", sqlite.URI(path, "_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)&_txlock=immediate"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var tx *sql.Tx
	var insert *sql.Stmt
	commit := func() error {
		if tx == nil {
			return nil
		}
		return tx.Commit()
	}
	i := 0
	err = storetest.GenerateRuns(n, func(r *routine.Run) error {
		if i%100_000 == 0 {
			if err := commit(); err != nil {
				return err
			}
			if tx, err = db.BeginTx(b.Context(), nil); err != nil {
				return err
			}
			if insert, err = tx.Prepare(`INSERT INTO runs (id, routine, revision, trigger_kind, trigger_payload, tags,
				state, attempt, queued_at, started_at, finished_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb,
				error, replay_of, usage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, '', ?)`); err != nil {
				return err
			}
		}
		i++
		_, err := insert.Exec(r.ID, r.Routine, r.Revision, r.Trigger.Kind, nullJSON(r.Trigger.Payload), jsonOf(r.Tags, len(r.Tags) == 0),
			string(r.State), r.Attempt, r.QueuedAt.UnixMicro(), microsOf(r.StartedAt), microsOf(r.FinishedAt), r.Worker,
			r.CPUUserMs, r.CPUSysMs, r.MaxRSSKB, jsonOf(r.Error, r.Error == nil), jsonOf(r.Usage, r.Usage.IsZero()))
		return err
	})
	if err != nil {
		return err
	}
	return commit()
}

func jsonOf(v any, empty bool) any {
	if empty {
		return nil
	}
	data, _ := json.Marshal(v)
	return string(data)
}

func nullJSON(raw []byte) any {
	if raw == nil {
		return nil
	}
	return string(raw)
}

func microsOf(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// BenchmarkRunEnds times the writes of a run from queued to succeeded
// (storetest.BenchmarkRunEnds), with the rollups (the triggers of 0011
// and the fold before each commit) and with the triggers dropped: the
// cost of the rollups per run.
func BenchmarkRunEnds(b *testing.B) {
	benchmarkRunEnds(b, storetest.BenchmarkRunEnds)
}

// BenchmarkRunEndsParallel is BenchmarkRunEnds with many callers at once,
// whose writes share transactions.
func BenchmarkRunEndsParallel(b *testing.B) {
	benchmarkRunEnds(b, storetest.BenchmarkRunEndsParallel)
}

// benchmarkRunEnds runs bench with and without the rollups (their
// triggers dropped), for the cost of the rollups per run.
func benchmarkRunEnds(b *testing.B, bench func(*testing.B, store.Store)) {
	for _, rollups := range []bool{true, false} {
		b.Run(fmt.Sprint("rollups=", rollups), func(b *testing.B) {
			s, tb := setup(b)
			if !rollups {
				db, err := sql.Open("sqlite", sqlite.URI(tb.path, "_pragma=busy_timeout(10000)"))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				if _, err := db.ExecContext(b.Context(), "DROP TRIGGER runs_end; DROP TRIGGER runs_created_ended"); err != nil {
					b.Fatal(err)
				}
			}
			bench(b, s)
		})
	}
}
