package postgres_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// shareWork runs work(i) for i in [0, n) on k goroutines, each taking the
// next i, and waits for them.
func shareWork(k, n int, work func(worker, i int) error) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make([]error, k)
	)
	for w := range k {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := work(w, i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// queueRuns creates n queued runs of ten routines, r0 to r9, from k
// goroutines.
func queueRuns(b *testing.B, s store.Store, k, n int) {
	b.Helper()
	queued := time.Now()
	if err := shareWork(k, n, func(_, i int) error {
		_, err := s.RunCreate(b.Context(), &store.RunCreateParams{ID: ulid.Make().String(), Routine: fmt.Sprint("r", i%10),
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: queued})
		return err
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRunCreate creates queued runs, from one creator and from four
// at once, and reports runs/s.
func BenchmarkRunCreate(b *testing.B) {
	for _, creators := range []int{1, 4} {
		b.Run(fmt.Sprint("creators=", creators), func(b *testing.B) {
			s, _ := setup(b)
			b.ResetTimer()
			queueRuns(b, s, creators, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// BenchmarkClaimFinish runs no-op runs off a backlog as workers do, each
// with a store (a pool) of its own: claim one run, checkpoint its start
// (the run and its step running), checkpoint its end (the run and its step
// succeeded, a log line). It reports completed runs/s, of 1 and 4
// workers, and of 4 with a ceiling on one of the ten routines (the path of
// the advisory lock).
func BenchmarkClaimFinish(b *testing.B) {
	for _, c := range []struct {
		workers  int
		ceilings map[string]int
	}{{1, nil}, {4, nil}, {4, map[string]int{"r0": 4}}} {
		name := fmt.Sprint("workers=", c.workers)
		if c.ceilings != nil {
			name += ",ceiling"
		}
		b.Run(name, func(b *testing.B) {
			s, tb := setup(b)
			queueRuns(b, s, 8, b.N)
			stores := make([]*postgres.Store, c.workers)
			for i := range stores {
				stores[i] = tb.open(b, postgres.Options{})
			}
			b.ResetTimer()
			var done atomic.Int64
			err := shareWork(c.workers, c.workers, func(w, _ int) error {
				worker := fmt.Sprint("w", w)
				for {
					runs, err := stores[w].RunClaim(b.Context(), &store.RunClaimParams{Worker: worker, Now: time.Now(),
						Lease: time.Minute, Ceilings: c.ceilings})
					if err != nil || len(runs) == 0 {
						return err
					}
					if err := finish(b, stores[w], runs[0].Run); err != nil {
						return err
					}
					done.Add(1)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			if done.Load() != int64(b.N) {
				b.Fatalf("%d runs completed, want %d", done.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// finish writes what the engine writes of a run of one no-op step.
func finish(b *testing.B, s store.Store, run *routine.Run) error {
	now := time.Now()
	run.Attempt, run.StartedAt = 1, &now
	step := &routine.StepRun{RunID: run.ID, ID: "noop", Phase: routine.PhaseMain, Kind: "run", State: routine.StateRunning,
		Attempts: 1, StartedAt: &now}
	if err := s.Checkpoint(b.Context(), &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
		return err
	}
	run.State, run.FinishedAt = routine.StateSucceeded, &now
	step.State, step.FinishedAt, step.ExitCode = routine.StateSucceeded, &now, new(0)
	return s.Checkpoint(b.Context(), &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step},
		Logs: []routine.LogLine{{RunID: run.ID, Step: "noop", Seq: 1, Time: now, Stream: routine.StreamStdout, Text: "ok"}}})
}

// BenchmarkClaim claims a backlog of runs one by one, with nothing else
// written, and reports claims/s: the cost of the claim statement alone.
// A local daemon claims with no placement; a worker of a deployment with
// its placement, which runs that require nothing pass at once (the common
// case), while those it cannot take are stepped over: "held back" puts
// 1000 of them at the head of the queue. "reserved" claims with a
// reservation across the fleet, "namespace" under the max_running of a
// namespace that holds every routine, never reached.
func BenchmarkClaim(b *testing.B) {
	worker := &routine.Placement{Region: "eu-west", Labels: []string{"gpu"}}
	team := map[string]string{}
	for i := range 10 {
		team[fmt.Sprint("r", i)] = "team"
	}
	for _, c := range []struct {
		name      string
		placement *routine.Placement
		heldBack  int
		reserved  map[string]int
		groups    map[string]string
	}{
		{"local", nil, 0, nil, nil},
		{"placement", worker, 0, nil, nil},
		{"placement,held back", worker, 1000, nil, nil},
		{"placement,reserved", worker, 0, map[string]int{"r0": 2}, nil},
		{"placement,namespace", worker, 0, nil, team},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, _ := setup(b)
			queued := time.Now().Add(-time.Minute)
			for range c.heldBack {
				if _, err := s.RunCreate(b.Context(), &store.RunCreateParams{ID: ulid.Make().String(), Routine: "tpu",
					QueuedAt: queued, Requires: routine.Placement{Labels: []string{"tpu"}}}); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.WorkerBeat(b.Context(), &store.WorkerBeatParams{ID: "w", Placement: *worker, Slots: 1 << 20, Now: time.Now()}); err != nil {
				b.Fatal(err)
			}
			queueRuns(b, s, 8, b.N)
			b.ResetTimer()
			for range b.N {
				runs, err := s.RunClaim(b.Context(), &store.RunClaimParams{Worker: "w", Now: time.Now(), Lease: time.Minute,
					Placement: c.placement, Reserved: c.reserved, Groups: c.groups, GroupCeilings: map[string]int{"team": 1 << 20}})
				if err != nil || len(runs) != 1 || runs[0].Routine == "tpu" {
					b.Fatalf("RunClaim = %d runs, %v", len(runs), err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}

// BenchmarkRunEnds times the writes of a run from queued to succeeded, one
// run at a time (storetest.BenchmarkRunEnds), with the rollups of
// minutes, hours and days, of minutes and hours only (as before
// 0009_rollup_days.sql), and with none (the rollup triggers dropped): what
// the rollups, and their days, cost a run. ns/op is the client's and
// PostgreSQL's work together, with their round trips.
func BenchmarkRunEnds(b *testing.B) {
	for _, c := range []struct {
		name, sql string
		widths    []int32 // of the rollups written
	}{
		{"rollups=days", "", []int32{60, 3600, 86400}},
		{"rollups=hours", `DO $$ BEGIN
			EXECUTE replace(pg_get_functiondef('routines_rollup_add'::regproc), ', (86400)', '');
		END $$`, []int32{60, 3600}},
		{"rollups=none", "DROP TRIGGER runs_end ON runs; DROP TRIGGER runs_created_ended ON runs", []int32{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, tb := setup(b)
			conn := tb.raw(b)
			if c.sql != "" {
				if _, err := conn.Exec(b.Context(), c.sql); err != nil {
					b.Fatal(err)
				}
			}
			storetest.BenchmarkRunEnds(b, s)
			var widths []int32
			if err := conn.QueryRow(b.Context(), "SELECT coalesce(array_agg(DISTINCT width ORDER BY width), '{}') FROM rollups").Scan(&widths); err != nil {
				b.Fatal(err)
			}
			if !slices.Equal(widths, c.widths) {
				b.Fatalf("rollups of widths %v written, want %v", widths, c.widths)
			}
		})
	}
}
