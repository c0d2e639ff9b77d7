package storetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// MillionEnv turns on the benchmarks of a store holding a million runs
// (BenchmarkMillion): ROUTINES_BENCH_1M=1. They load the runs first, which
// takes a while, so the normal suite leaves them out.
const MillionEnv = "ROUTINES_BENCH_1M"

// The data set of BenchmarkMillion: MillionRuns runs of MillionRoutines
// routines, queued over the MillionDays days before MillionEnd.
const (
	MillionRuns     = 1_000_000
	MillionRoutines = 20
	MillionDays     = 30
)

// MillionEnd is when the data set's last run was queued.
var MillionEnd = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// MillionCount is how many runs the benchmarks of MillionEnv load: a
// million when it is 1, the number it is when more (a quick try), and
// it skips b when it is not set.
func MillionCount(b *testing.B) int {
	b.Helper()
	v := os.Getenv(MillionEnv)
	if v == "" {
		b.Skipf("set %s=1 to load a million runs and time the runs page and stats", MillionEnv)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%s: want 1 (a million runs) or a number of runs", MillionEnv, v)
	}
	if n == 1 {
		n = MillionRuns
	}
	return n
}

// GenerateRuns calls yield with the n runs of the data set, oldest first,
// the same at every call: most ended (92% succeeded, 5% failed, 1% dead,
// 1% cancelled while queued), those of the last minutes still queued or
// running; routines used unevenly (r00 most); triggers cron, webhook,
// manual and a few replays; tags prod (30%), team-a (10%) and rare (0.1%);
// durations from milliseconds to minutes; tokens on 5%. A driver's test
// inserts them as fast as it can, with the triggers of its schema filling
// the rollups as RunCreate and RunUpdate would.
func GenerateRuns(n int, yield func(*routine.Run) error) error {
	rng := rand.New(rand.NewPCG(13, 1))
	span := MillionDays * 24 * time.Hour
	start := MillionEnd.Add(-span)
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{13}), 0)
	for i := range n {
		queued := start.Add(time.Duration(float64(span) * float64(i) / float64(n))).Truncate(time.Microsecond)
		run := &routine.Run{
			ID:       ulid.MustNew(ulid.Timestamp(queued), entropy).String(),
			Routine:  fmt.Sprintf("r%02d", int(float64(MillionRoutines)*math.Pow(rng.Float64(), 2))),
			Revision: "sha256:0123456789ab",
			QueuedAt: queued,
		}
		switch k := rng.IntN(100); {
		case k < 60:
			run.Trigger.Kind = "cron"
		case k < 90:
			run.Trigger.Kind = "webhook"
			run.Trigger.Payload = []byte(`{"path":"/hooks/x","body":{"n":1}}`)
		case k < 99:
			run.Trigger.Kind = routine.TriggerManual
		default:
			run.Trigger.Kind = routine.TriggerReplay
		}
		switch k := rng.IntN(1000); {
		case k < 300:
			run.Tags = []string{"prod"}
		case k < 400:
			run.Tags = []string{"team-a", "prod"}
		case k < 401:
			run.Tags = []string{"rare"}
		}
		left := n - i
		switch k := rng.IntN(100); {
		case left <= 50:
			run.State = routine.StateQueued
		case left <= 100:
			run.State = routine.StateRunning
			run.Worker = "w1"
			run.StartedAt = new(queued.Add(time.Second))
		case k == 0:
			run.State = routine.StateCancelled
			run.FinishedAt = new(queued.Add(time.Duration(rng.IntN(60)) * time.Second))
		default:
			run.State = routine.StateSucceeded
			if k <= 5 {
				run.State = routine.StateFailed
			} else if k == 6 {
				run.State = routine.StateDead
			}
			wait := time.Duration(rng.ExpFloat64() * float64(200*time.Millisecond)).Truncate(time.Microsecond)
			took := time.Duration(math.Exp(rng.NormFloat64()*1.5+math.Log(2)) * float64(time.Second)).Truncate(time.Microsecond)
			run.StartedAt = new(queued.Add(wait))
			run.FinishedAt = new(queued.Add(wait + took))
			run.Attempt = 1
			run.CPUUserMs, run.CPUSysMs = took.Milliseconds()/3, took.Milliseconds()/10
			run.MaxRSSKB = 20_000 + rng.Int64N(200_000)
			run.Usage = routine.Usage{GBSeconds: float64(run.MaxRSSKB) / (1 << 20) * took.Seconds(),
				BytesSent: rng.Int64N(10_000), BytesReceived: rng.Int64N(100_000)}
			if rng.IntN(20) == 0 {
				run.Usage.Tokens = map[string]routine.Tokens{"claude-x": {Input: rng.Int64N(5000), Output: rng.Int64N(1000)}}
			}
			if run.State != routine.StateSucceeded {
				run.Error = &routine.ErrorPayload{Code: routine.CodeStepFailed, Message: "exit status 1", RunID: run.ID}
			}
		}
		if err := yield(run); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkMillion times the reads of the dashboard and `routines stats`
// on a store that holds the runs of GenerateRuns(MillionRuns): the newest
// page of runs (50), alone and with each filter, the next page, and the
// stats of every routine over the data set's 30 days (totals, and with a
// series of hours) and over its last day (with a series of 5 minutes,
// read from minute rows). Besides the time of each read it reports the
// CPU time the process spent on it (cpu-ms/op), which a busy machine does
// not inflate: with an embedded store, that is all of the read's work.
func BenchmarkMillion(b *testing.B, s store.Store) {
	ctx := b.Context()
	first, err := s.RunList(ctx, &store.RunListParams{})
	if err != nil || len(first) != 50 {
		b.Fatalf("RunList = %d runs, %v", len(first), err)
	}
	for _, bc := range []struct {
		name string
		p    store.RunListParams
	}{
		{"newest", store.RunListParams{}},
		{"next_page", store.RunListParams{Before: first[49].ID}},
		{"routine", store.RunListParams{Routine: "r07"}},
		{"routine_rare", store.RunListParams{Routine: "r19"}},
		{"state_failed", store.RunListParams{States: []routine.State{routine.StateFailed}}},
		{"state_dead", store.RunListParams{States: []routine.State{routine.StateDead}}},
		{"routine_and_state", store.RunListParams{Routine: "r12", States: []routine.State{routine.StateFailed, routine.StateDead}}},
		{"tag", store.RunListParams{Tag: "prod"}},
		{"tag_rare", store.RunListParams{Tag: "rare"}},
		{"trigger_replay", store.RunListParams{Trigger: routine.TriggerReplay}},
		{"since_24h", store.RunListParams{Since: MillionEnd.Add(-24 * time.Hour)}},
		{"week_ago", store.RunListParams{Until: MillionEnd.Add(-7 * 24 * time.Hour)}},
		{"tag_since_failed", store.RunListParams{Tag: "team-a", Since: MillionEnd.Add(-7 * 24 * time.Hour),
			States: []routine.State{routine.StateFailed}}},
		{"id_prefix", store.RunListParams{IDPrefix: first[10].ID[:8]}},
	} {
		b.Run("RunList/"+bc.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				if _, err := s.RunList(ctx, &bc.p); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
	for _, bc := range []struct {
		name string
		p    store.StatsParams
	}{
		{"30d", store.StatsParams{Since: MillionEnd.Add(-MillionDays * 24 * time.Hour), Until: MillionEnd.Add(time.Minute)}},
		{"30d_hourly", store.StatsParams{Since: MillionEnd.Add(-MillionDays * 24 * time.Hour), Until: MillionEnd.Add(time.Minute), Step: time.Hour}},
		{"30d_one_routine_hourly", store.StatsParams{Routines: []string{"r03"}, Since: MillionEnd.Add(-MillionDays*24*time.Hour - 30*time.Minute),
			Until: MillionEnd.Add(time.Minute), Step: time.Hour}},
		{"24h_5m", store.StatsParams{Since: MillionEnd.Add(-24 * time.Hour), Until: MillionEnd.Add(time.Minute), Step: 5 * time.Minute}},
	} {
		b.Run("Stats/"+bc.name, func(b *testing.B) {
			var runs int64
			cpu := cpuTime()
			for b.Loop() {
				stats, err := s.Stats(ctx, &bc.p)
				if err != nil {
					b.Fatal(err)
				}
				runs = 0
				for _, st := range stats {
					runs += st.Totals.Duration.Count() + st.Totals.ByState[routine.StateCancelled]
				}
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(runs), "runs")
		})
	}
}

// reportCPU reports the CPU time per op since since.
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkRunEnds times the writes of a run of one step from its queueing
// to its end, as a daemon makes them (RunCreate, RunClaim, a checkpoint of
// its start, one of its end), one run at a time, of ten routines, and
// reports the CPU time per run: with the drivers' rollup triggers and
// without them, it says what the rollups cost a run.
func BenchmarkRunEnds(b *testing.B, s store.Store) {
	ctx := b.Context()
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		now := time.Now()
		if _, err := s.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: fmt.Sprint("r", i%10),
			Trigger: routine.TriggerInfo{Kind: "webhook"}, QueuedAt: now}); err != nil {
			b.Fatal(err)
		}
		runs, err := s.RunClaim(ctx, &store.RunClaimParams{Worker: "w", Now: now, Lease: time.Minute})
		if err != nil || len(runs) != 1 {
			b.Fatalf("RunClaim = %d runs, %v", len(runs), err)
		}
		run := runs[0].Run
		run.Attempt, run.StartedAt = 1, &now
		step := &routine.StepRun{RunID: run.ID, ID: "get", Phase: routine.PhaseMain, Kind: "state",
			State: routine.StateRunning, Attempts: 1, StartedAt: &now}
		if err := s.Checkpoint(ctx, &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		run.State, run.FinishedAt, run.CPUUserMs = routine.StateSucceeded, &end, 1
		step.State, step.FinishedAt = routine.StateSucceeded, &end
		if err := s.Checkpoint(ctx, &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkRunEndsParallel is BenchmarkRunEnds with 16 callers per CPU at
// once, as a daemon under load has: runs created running (held by their
// creator, as run-once does) and ended by a checkpoint, which a driver
// may group into shared transactions.
func BenchmarkRunEndsParallel(b *testing.B, s store.Store) {
	ctx := b.Context()
	cpu := cpuTime()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			now := time.Now()
			run, err := s.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: fmt.Sprint("r", i%10),
				Trigger: routine.TriggerInfo{Kind: "webhook"}, QueuedAt: now, State: routine.StateRunning,
				Worker: "w", Lease: time.Minute})
			if err != nil {
				b.Error(err)
				return
			}
			end := time.Now()
			run.Attempt, run.StartedAt = 1, &now
			run.State, run.FinishedAt, run.CPUUserMs = routine.StateSucceeded, &end, 1
			step := &routine.StepRun{RunID: run.ID, ID: "get", Phase: routine.PhaseMain, Kind: "state",
				State: routine.StateSucceeded, Attempts: 1, StartedAt: &now, FinishedAt: &end}
			if err := s.Checkpoint(ctx, &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu)
}
