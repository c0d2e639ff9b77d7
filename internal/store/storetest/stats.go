package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// hour0 is a whole hour: the rollups' minutes and hours start on it.
var hour0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// ending describes a run that Stats must count: created queued at queued,
// started after wait (never when wait < 0), ended in state after took.
type ending struct {
	routine string
	state   routine.State
	queued  time.Time
	wait    time.Duration // < 0: never started
	took    time.Duration
	cpuMs   int64 // user; sys is the same
	usage   routine.Usage
}

// end creates the run of e and ends it with RunUpdate, and returns it.
func (b *testBundle) end(t *testing.T, e ending) *routine.Run {
	t.Helper()
	run := b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.QueuedAt = e.routine, e.queued })
	e.apply(run)
	if err := b.s.RunUpdate(b.ctx, run); err != nil {
		t.Fatalf("RunUpdate: %v", err)
	}
	return run
}

// apply sets the fields of run that end it as e says.
func (e ending) apply(run *routine.Run) {
	run.State = e.state
	if e.wait >= 0 {
		run.StartedAt = ptr(e.queued.Add(e.wait))
		run.FinishedAt = ptr(e.queued.Add(e.wait + e.took))
	} else if e.took > 0 {
		run.FinishedAt = ptr(e.queued.Add(e.took))
	}
	run.CPUUserMs, run.CPUSysMs = e.cpuMs, e.cpuMs
	run.MaxRSSKB = e.rssKB()
	run.Usage = e.usage
}

// rssKB is the peak memory of a run of e: more for more CPU, so that the
// runs of a test differ.
func (e ending) rssKB() int64 { return 1024 + 10*e.cpuMs }

// endedAt is when a run of e ended, as Stats places it.
func (e ending) endedAt() time.Time {
	if e.wait < 0 {
		return e.queued.Add(e.took)
	}
	return e.queued.Add(e.wait + e.took)
}

// aggregate is what Stats must say of the runs es.
func aggregate(es ...ending) store.Aggregate {
	var a store.Aggregate
	for _, e := range es {
		if a.ByState == nil {
			a.ByState = map[routine.State]int64{}
		}
		a.ByState[e.state]++
		if e.wait >= 0 {
			a.Duration.Observe(e.took)
			a.QueueWait.Observe(e.wait)
		}
		a.CPUSeconds += float64(2*e.cpuMs) / 1000
		a.PeakRSSKB = max(a.PeakRSSKB, e.rssKB())
		a.Usage.Add(e.usage)
	}
	return a
}

func (b *testBundle) stats(t *testing.T, p store.StatsParams) map[string]*store.Stats {
	t.Helper()
	list, err := b.s.Stats(b.ctx, &p)
	if err != nil {
		t.Fatalf("Stats(%+v): %v", p, err)
	}
	out := map[string]*store.Stats{}
	for i, st := range list {
		if i > 0 && list[i-1].Routine >= st.Routine {
			t.Errorf("Stats: %s after %s: want them by name", st.Routine, list[i-1].Routine)
		}
		out[st.Routine] = st
	}
	return out
}

// checkAggregate compares the sums of got and want, ignoring Start, and
// states that counted nothing.
func checkAggregate(t *testing.T, what string, got, want store.Aggregate) {
	t.Helper()
	norm := func(a store.Aggregate) store.Aggregate {
		a.Start = time.Time{}
		states := map[routine.State]int64{}
		for st, n := range a.ByState {
			if n != 0 {
				states[st] = n
			}
		}
		a.ByState = states
		for _, h := range []*store.Histogram{&a.Duration, &a.QueueWait} {
			if h.Count() == 0 {
				*h = store.Histogram{}
			}
		}
		a.CPUSeconds = float64(int64(a.CPUSeconds*1000+0.5)) / 1000
		a.Usage.GBSeconds = float64(int64(a.Usage.GBSeconds*1e6+0.5)) / 1e6
		return a
	}
	g, w := norm(got), norm(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(g), show(w))
	}
}

func exerciseStats(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ByRoutineAndState", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		tokens := func(in, out int64) map[string]routine.Tokens {
			return map[string]routine.Tokens{"big": {Input: in, Output: out}, "small": {Input: 1}}
		}
		a := []ending{
			{"a", routine.StateSucceeded, hour0.Add(time.Minute), time.Second, 3 * time.Second, 100, routine.Usage{GBSeconds: 0.5, BytesSent: 10}},
			{"a", routine.StateSucceeded, hour0.Add(2 * time.Minute), 20 * time.Millisecond, 250 * time.Millisecond, 7, routine.Usage{BytesReceived: 1 << 33, Tokens: tokens(100, 20)}},
			{"a", routine.StateFailed, hour0.Add(3 * time.Minute), 0, time.Hour, 1, routine.Usage{Tokens: tokens(5, 6)}},
		}
		bb := []ending{
			{"b", routine.StateDead, hour0.Add(4 * time.Minute), 2 * time.Minute, 90 * time.Second, 0, routine.Usage{}},
			// A queued run cancelled: never started, ended when it was
			// cancelled, or when it was queued when that is all it says.
			{"b", routine.StateCancelled, hour0.Add(5 * time.Minute), -1, 10 * time.Second, 0, routine.Usage{}},
			{"b", routine.StateCancelled, hour0.Add(6 * time.Minute), -1, 0, 0, routine.Usage{}},
		}
		for _, e := range append(append([]ending{}, a...), bb...) {
			b.end(t, e)
		}
		// Runs not ended are not counted.
		b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.QueuedAt = "a", hour0 })
		b.createRun(t, func(p *store.RunCreateParams) {
			p.Routine, p.QueuedAt, p.State, p.Worker, p.Lease = "c", hour0, routine.StateRunning, "w", time.Minute
		})

		for _, tc := range []struct {
			name string
			p    store.StatsParams
			want map[string][]ending
		}{
			{"all", store.StatsParams{Since: hour0, Until: hour0.Add(3 * time.Hour)}, map[string][]ending{"a": a, "b": bb}},
			{"one routine", store.StatsParams{Routines: []string{"b", "nosuch"}, Since: hour0, Until: hour0.Add(24 * time.Hour)},
				map[string][]ending{"b": bb}},
			{"no bounds", store.StatsParams{}, map[string][]ending{"a": a, "b": bb}},
			// The failed run of a ended an hour after it started.
			{"first hour", store.StatsParams{Since: hour0, Until: hour0.Add(time.Hour)}, map[string][]ending{"a": a[:2], "b": bb}},
			{"before", store.StatsParams{Since: hour0.Add(-time.Hour), Until: hour0}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := b.stats(t, tc.p)
				if len(got) != len(tc.want) {
					t.Errorf("Stats gave %d routines, want %d", len(got), len(tc.want))
				}
				for name, es := range tc.want {
					st := got[name]
					if st == nil {
						t.Errorf("no stats of %s", name)
						continue
					}
					checkAggregate(t, name, st.Totals, aggregate(es...))
					if st.Step != 0 || st.Series != nil {
						t.Errorf("%s: step %v, %d points without a Step asked; want none", name, st.Step, len(st.Series))
					}
				}
			})
		}
	})

	t.Run("RangesExactToTheMinute", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Runs that end at 09:59:59, 10:00, 10:59:30, 11:00:30, 12:01 and
		// 13:00 the next day.
		var es []ending
		for _, end := range []time.Duration{-time.Second, 0, 59*time.Minute + 30*time.Second,
			time.Hour + 30*time.Second, 2*time.Hour + time.Minute, 27 * time.Hour} {
			e := ending{"r", routine.StateSucceeded, hour0.Add(end - time.Second), 0, time.Second, 1, routine.Usage{}}
			b.end(t, e)
			es = append(es, e)
		}
		for _, tc := range []struct {
			since, until time.Duration
			want         []ending
		}{
			{0, time.Hour, es[1:3]},
			{0, 2 * time.Hour, es[1:4]},
			{time.Minute, 2*time.Hour + time.Minute, es[2:4]},
			{time.Minute, 2*time.Hour + 2*time.Minute, es[2:5]},
			{-time.Minute, 28 * time.Hour, es},
			{59 * time.Minute, 61 * time.Minute, es[2:4]},
			// The minute of Since counts whole; so does that of Until.
			{59*time.Minute + 45*time.Second, 60*time.Minute + 10*time.Second, es[2:4]},
			{60 * time.Minute, 60*time.Minute + 10*time.Second, es[3:4]},
			{3 * time.Hour, 27 * time.Hour, nil},
			{2 * time.Hour, time.Hour, nil},
		} {
			t.Run(fmt.Sprintf("%v-%v", tc.since, tc.until), func(t *testing.T) {
				got := b.stats(t, store.StatsParams{Since: hour0.Add(tc.since), Until: hour0.Add(tc.until)})
				if len(tc.want) == 0 {
					if len(got) != 0 {
						t.Errorf("Stats = %s, want none", show(got))
					}
					return
				}
				if got["r"] == nil {
					t.Fatalf("no stats of r")
				}
				checkAggregate(t, "r", got["r"].Totals, aggregate(tc.want...))
			})
		}
	})

	t.Run("Series", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		at := func(d time.Duration) ending {
			return ending{"s", routine.StateSucceeded, hour0.Add(d - time.Second), 0, time.Second, 1, routine.Usage{BytesSent: 1}}
		}
		es := []ending{at(time.Minute), at(7 * time.Minute), at(25 * time.Minute), at(time.Hour), at(3*time.Hour + 5*time.Minute)}
		for _, e := range es {
			b.end(t, e)
		}
		for _, tc := range []struct {
			name      string
			step      time.Duration
			until     time.Duration
			wantStep  time.Duration
			wantStart []time.Duration
			wantPts   [][]ending
		}{
			{"hours", time.Hour, 4 * time.Hour, time.Hour, []time.Duration{0, time.Hour, 3 * time.Hour},
				[][]ending{es[:3], es[3:4], es[4:]}},
			{"ten minutes", 10 * time.Minute, 4 * time.Hour, 10 * time.Minute,
				[]time.Duration{0, 20 * time.Minute, time.Hour, 3 * time.Hour}, [][]ending{es[:2], es[2:3], es[3:4], es[4:]}},
			{"seconds widen to a minute", 30 * time.Second, time.Hour, time.Minute,
				[]time.Duration{time.Minute, 7 * time.Minute, 25 * time.Minute}, [][]ending{es[:1], es[1:2], es[2:3]}},
			{"two hours", 90 * time.Minute, 4 * time.Hour, 2 * time.Hour, []time.Duration{0, 2 * time.Hour},
				[][]ending{es[:4], es[4:]}},
			{"too many points widen to hours", time.Minute, 30 * 24 * time.Hour, time.Hour,
				[]time.Duration{0, time.Hour, 3 * time.Hour}, [][]ending{es[:3], es[3:4], es[4:]}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := b.stats(t, store.StatsParams{Since: hour0, Until: hour0.Add(tc.until), Step: tc.step})["s"]
				if st == nil {
					t.Fatal("no stats of s")
				}
				if st.Step != tc.wantStep {
					t.Errorf("Step = %v, want %v", st.Step, tc.wantStep)
				}
				var before []ending
				for _, e := range es {
					if e.endedAt().Before(hour0.Add(tc.until)) {
						before = append(before, e)
					}
				}
				checkAggregate(t, "totals", st.Totals, aggregate(before...))
				if len(st.Series) != len(tc.wantStart) {
					t.Fatalf("%d points, want %d: %s", len(st.Series), len(tc.wantStart), show(st.Series))
				}
				for i, pt := range st.Series {
					if !pt.Start.Equal(hour0.Add(tc.wantStart[i])) || pt.Start.Location() != time.UTC {
						t.Errorf("point %d starts at %v, want %v", i, pt.Start, hour0.Add(tc.wantStart[i]))
					}
					checkAggregate(t, fmt.Sprintf("point %d", i), pt, aggregate(tc.wantPts[i]...))
				}
			})
		}
	})

	t.Run("Days", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Runs that end either side of midnights, over four days: a
		// driver that keeps day rollups reads them for the whole days of
		// a range, hours and minutes at its edges, and must say what one
		// that reads hours says.
		day0 := hour0.Truncate(24 * time.Hour)
		day := 24 * time.Hour
		tokens := routine.Usage{Tokens: map[string]routine.Tokens{"m": {Input: 3, Output: 1}}}
		var es []ending
		for i, end := range []time.Duration{-time.Second, 0, 12*time.Hour + 30*time.Second, day - time.Second, day,
			2*day + 30*time.Second, 3*day + 5*time.Hour} {
			e := ending{"d", routine.StateSucceeded, day0.Add(end - time.Second), 0, time.Second, 1, routine.Usage{BytesSent: int64(i)}}
			if i%2 == 0 {
				e.usage, e.state = tokens, routine.StateFailed
			}
			b.end(t, e)
			es = append(es, e)
		}
		for _, tc := range []struct {
			since, until time.Duration
			want         []ending
		}{
			{0, 3 * day, es[1:6]},
			{-time.Minute, 3*day + 6*time.Hour, es},
			{time.Minute, 2 * day, es[2:5]},
			{12*time.Hour + time.Minute, day + time.Minute, es[3:5]},
			{day + time.Minute, 3 * day, es[5:6]},
		} {
			t.Run(fmt.Sprintf("%v-%v", tc.since, tc.until), func(t *testing.T) {
				got := b.stats(t, store.StatsParams{Since: day0.Add(tc.since), Until: day0.Add(tc.until)})
				if got["d"] == nil {
					t.Fatalf("no stats of d")
				}
				checkAggregate(t, "d", got["d"].Totals, aggregate(tc.want...))
			})
		}
		for _, tc := range []struct {
			name      string
			step      time.Duration
			wantStart []time.Duration
			wantPts   [][]ending
		}{
			{"days", day, []time.Duration{-day, 0, day, 2 * day, 3 * day}, [][]ending{es[:1], es[1:4], es[4:5], es[5:6], es[6:]}},
			{"hours", time.Hour, []time.Duration{-time.Hour, 0, 12 * time.Hour, day - time.Hour, day, 2 * day, 3*day + 5*time.Hour},
				[][]ending{es[:1], es[1:2], es[2:3], es[3:4], es[4:5], es[5:6], es[6:]}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := b.stats(t, store.StatsParams{Since: day0.Add(-day), Until: day0.Add(4 * day), Step: tc.step})["d"]
				if st == nil {
					t.Fatal("no stats of d")
				}
				checkAggregate(t, "totals", st.Totals, aggregate(es...))
				if len(st.Series) != len(tc.wantStart) {
					t.Fatalf("%d points, want %d: %s", len(st.Series), len(tc.wantStart), show(st.Series))
				}
				for i, pt := range st.Series {
					if !pt.Start.Equal(day0.Add(tc.wantStart[i])) {
						t.Errorf("point %d starts at %v, want %v", i, pt.Start, day0.Add(tc.wantStart[i]))
					}
					checkAggregate(t, fmt.Sprintf("point %d", i), pt, aggregate(tc.wantPts[i]...))
				}
			})
		}
	})

	t.Run("Histograms", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Durations on and either side of every bound, and beyond the
		// last: each must land in the bucket store.Histogram.Observe puts
		// it in.
		var es []ending
		for i, bound := range store.HistogramBounds {
			for _, d := range []time.Duration{bound - time.Microsecond, bound, bound + time.Microsecond} {
				wait := (d / 3).Truncate(time.Microsecond)
				es = append(es, ending{"h", routine.StateSucceeded, hour0.Add(time.Duration(i) * time.Second), wait, d, 0, routine.Usage{}})
			}
		}
		es = append(es, ending{"h", routine.StateFailed, hour0, 0, 0, 0, routine.Usage{}})
		for _, e := range es {
			b.end(t, e)
		}
		st := b.stats(t, store.StatsParams{Since: hour0, Until: hour0.Add(100 * 24 * time.Hour)})["h"]
		if st == nil {
			t.Fatal("no stats of h")
		}
		want := aggregate(es...)
		checkAggregate(t, "h", st.Totals, want)
		for _, q := range []float64{0.5, 0.95, 0.99} {
			if got, w := st.Totals.Duration.Quantile(q), want.Duration.Quantile(q); got != w {
				t.Errorf("p%v = %v, want %v", q*100, got, w)
			}
		}
	})

	t.Run("EndedOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		e := ending{"once", routine.StateSucceeded, hour0, time.Second, time.Second, 10, routine.Usage{BytesSent: 5}}
		run := b.end(t, e)
		// Final writes again: another final state, more CPU, through
		// RunUpdate and Checkpoint; none counts.
		again := *run
		again.State, again.CPUUserMs = routine.StateFailed, 1000
		if err := b.s.RunUpdate(b.ctx, &again); err != nil {
			t.Fatal(err)
		}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: &again}); err != nil {
			t.Fatal(err)
		}
		// Writes of the same end at once count once.
		racer := b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.QueuedAt = "once", hour0 })
		e.apply(racer)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				r := *racer
				var err error
				if i%2 == 0 {
					err = b.s.RunUpdate(b.ctx, &r)
				} else {
					err = b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: &r})
				}
				if err != nil {
					t.Errorf("end %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		st := b.stats(t, store.StatsParams{Since: hour0, Until: hour0.Add(time.Hour)})["once"]
		if st == nil {
			t.Fatal("no stats of once")
		}
		checkAggregate(t, "once", st.Totals, aggregate(e, e))
	})

	t.Run("ManyEndAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Runs of several routines ending together through checkpoints
		// (which a driver may batch), each with its steps' usage.
		const n = 48
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			want = map[string][]ending{}
		)
		for i := range n {
			e := ending{fmt.Sprintf("m%d", i%3), []routine.State{routine.StateSucceeded, routine.StateFailed}[i%2],
				hour0.Add(time.Duration(i) * time.Second), time.Duration(i) * time.Millisecond, time.Duration(i) * time.Second,
				int64(i), routine.Usage{GBSeconds: 0.25, Tokens: map[string]routine.Tokens{fmt.Sprintf("model-%d", i%2): {Input: int64(i)}}}}
			run := b.createRun(t, func(p *store.RunCreateParams) { p.Routine, p.QueuedAt = e.routine, e.queued })
			want[e.routine] = append(want[e.routine], e)
			wg.Go(func() {
				e.apply(run)
				step := &routine.StepRun{RunID: run.ID, ID: "s", Phase: routine.PhaseMain, Kind: "run", State: e.state, Usage: e.usage}
				if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: run, Steps: []*routine.StepRun{step}}); err != nil {
					t.Errorf("Checkpoint: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				checkRun(t, b.getRun(t, run.ID), run)
				checkStep(t, b.listSteps(t, run.ID, 1)[0], step)
			})
		}
		wg.Wait()
		got := b.stats(t, store.StatsParams{Since: hour0, Until: hour0.Add(24 * time.Hour), Step: time.Hour})
		for name, es := range want {
			if got[name] == nil {
				t.Errorf("no stats of %s", name)
				continue
			}
			checkAggregate(t, name, got[name].Totals, aggregate(es...))
		}
	})
}
