//go:build unix

package sqlite_test

import (
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// BenchmarkPruneBatch times the batches that delete runs (each with a
// step record and a log line) from a store, 100 runs a batch (as
// package retention deletes them): how long
// pruning holds the writer. It reports the longest and the median batch.
func BenchmarkPruneBatch(b *testing.B) {
	s, tb := setup(b)
	end := time.Now().Add(-48 * time.Hour)
	const runs = 20000
	for range b.N {
		b.StopTimer()
		for range runs / 100 {
			ids := make([]*routine.Run, 0, 100)
			for range 100 {
				ids = append(ids, createRun(b, tb.ctx, s, "r"))
			}
			for _, run := range ids {
				run.State, run.StartedAt, run.FinishedAt = routine.StateSucceeded, &end, &end
				if err := s.Checkpoint(tb.ctx, &store.CheckpointParams{Run: run,
					Steps: []*routine.StepRun{{RunID: run.ID, ID: "a", Phase: routine.PhaseMain, Kind: "state", State: routine.StateSucceeded}},
					Logs:  []routine.LogLine{{RunID: run.ID, Seq: 1, Step: "a", Time: end, Stream: routine.StreamStdout, Text: "a line of output"}}}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		// The batch runs on this goroutine (no other writer waits), on
		// this thread: its CPU time is the batch's own, whatever else the
		// machine does, where its wall time counts the waits for a core.
		runtime.LockOSThread()
		var took, cpu []time.Duration
		for {
			t, c := time.Now(), threadCPU()
			res, err := s.Prune(tb.ctx, &store.PruneParams{Kind: store.PruneRuns, Before: time.Now().Add(-time.Hour), Now: time.Now(), Limit: 100})
			if err != nil {
				b.Fatal(err)
			}
			took, cpu = append(took, time.Since(t)), append(cpu, threadCPU()-c)
			if !res.More {
				break
			}
		}
		runtime.UnlockOSThread()
		for _, m := range []struct {
			name string
			ds   []time.Duration
		}{{"wall", took}, {"cpu", cpu}} {
			slices.Sort(m.ds)
			b.ReportMetric(float64(m.ds[len(m.ds)-1].Microseconds())/1000, "max-"+m.name+"-ms/batch")
			b.ReportMetric(float64(m.ds[len(m.ds)/2].Microseconds())/1000, "median-"+m.name+"-ms/batch")
		}
	}
}

// threadCPU is the CPU time, user and system, of the calling thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
