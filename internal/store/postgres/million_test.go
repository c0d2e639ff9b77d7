package postgres_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// BenchmarkMillion times the runs page and stats on a store of a million
// runs (storetest.BenchmarkMillion; set ROUTINES_BENCH_1M=1). The runs
// are copied in (COPY) in chunks, the schema's triggers filling run_tags
// and the rollups, and the tables analyzed, as autovacuum would.
// ROUTINES_BENCH_1M_PG=URL keeps the runs in that database (of a server
// of one's own), loaded once: the store migrates it, and loads the runs
// when it holds none.
func BenchmarkMillion(b *testing.B) {
	n := storetest.MillionCount(b)
	tb := &testBundle{ctx: b.Context(), url: os.Getenv("ROUTINES_BENCH_1M_PG")}
	var s *postgres.Store
	if tb.url == "" {
		s, tb = setup(b)
	} else {
		s = tb.open(b, postgres.Options{})
	}
	conn := tb.raw(b)
	var loaded bool
	if err := conn.QueryRow(b.Context(), "SELECT EXISTS (SELECT FROM runs)").Scan(&loaded); err != nil {
		b.Fatal(err)
	}
	if !loaded {
		start := time.Now()
		if err := loadRuns(b, conn, n); err != nil {
			b.Fatal(err)
		}
		b.Logf("%d runs loaded in %v", n, time.Since(start).Round(time.Millisecond))
	}
	storetest.BenchmarkMillion(b, s)
}

// loadRuns copies the n runs of storetest.GenerateRuns into the database
// of conn, and analyzes it.
func loadRuns(tb testing.TB, conn *pgx.Conn, n int) error {
	columns := []string{"id", "routine", "revision", "trigger_kind", "trigger_payload", "tags", "state", "attempt",
		"queued_at", "started_at", "finished_at", "worker", "region", "cpu_user_ms", "cpu_sys_ms", "max_rss_kb",
		"error", "replay_of", "usage"}
	var chunk [][]any
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		_, err := conn.CopyFrom(tb.Context(), pgx.Identifier{"runs"}, columns, pgx.CopyFromRows(chunk))
		chunk = chunk[:0]
		return err
	}
	err := storetest.GenerateRuns(n, func(r *routine.Run) error {
		chunk = append(chunk, []any{r.ID, r.Routine, r.Revision, r.Trigger.Kind, []byte(r.Trigger.Payload),
			jsonOf(r.Tags, len(r.Tags) == 0), string(r.State), int32(r.Attempt), r.QueuedAt, r.StartedAt, r.FinishedAt,
			r.Worker, "", r.CPUUserMs, r.CPUSysMs, r.MaxRSSKB, jsonOf(r.Error, r.Error == nil), "",
			jsonOf(r.Usage, r.Usage.IsZero())})
		if len(chunk) == 50_000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	_, err = conn.Exec(tb.Context(), "VACUUM ANALYZE")
	return err
}

func jsonOf(v any, empty bool) *string {
	if empty {
		return nil
	}
	data, _ := json.Marshal(v)
	s := string(data)
	return &s
}
