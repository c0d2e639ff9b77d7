package store

import (
	"cmp"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// The widths of the rollups a driver keeps: each run that ends is added to
// the minute and to the hour of its end (a multiple of the width since the
// Unix epoch). Minutes make short ranges, and the edges of long ones,
// exact to the minute; hours keep a month to 720 rows per routine.
const (
	RollupMinute = time.Minute
	RollupHour   = time.Hour
)

// MaxSeriesPoints bounds the points of a Series: a Step that would give
// more is widened to whole hours.
const MaxSeriesPoints = 1500

// RollupRange is a range of the rollups of one width that Stats reads:
// the rows whose start is in [Since, Until).
type RollupRange struct {
	Width        time.Duration // RollupMinute or RollupHour
	Since, Until time.Time
}

// StatsPlan is how a driver answers Stats: which rollups it reads, and how
// it sums them (NewStatsBuilder).
type StatsPlan struct {
	Ranges []RollupRange
	// Step is the width of the points of the series, 0 for none: p.Step
	// rounded up to whole minutes, or to whole hours when it is an hour or
	// more or when the range would have more than MaxSeriesPoints points.
	Step time.Duration
}

// PlanStats chooses the rollups that answer p: the range is widened to
// whole minutes (the minute of Since counts, and so does that of Until
// when Until is not a whole minute); the whole hours inside it are read
// from hour rows unless the series needs minutes, and the rest from
// minute rows. A zero Until is no bound.
func PlanStats(p *StatsParams) StatsPlan {
	since := p.Since.UTC().Truncate(RollupMinute)
	until := p.Until.UTC()
	if p.Until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	} else if t := until.Truncate(RollupMinute); t.Before(until) {
		until = t.Add(RollupMinute)
	}
	var plan StatsPlan
	if !until.After(since) {
		return plan
	}
	if p.Step > 0 {
		plan.Step = roundUp(p.Step, RollupMinute)
		if plan.Step >= RollupHour || until.Sub(since)/plan.Step > MaxSeriesPoints {
			plan.Step = roundUp(max(plan.Step, until.Sub(since)/MaxSeriesPoints), RollupHour)
		}
	}
	hSince := since.Truncate(RollupHour)
	if hSince.Before(since) {
		hSince = hSince.Add(RollupHour)
	}
	hUntil := until.Truncate(RollupHour)
	if plan.Step%RollupHour != 0 || !hSince.Before(hUntil) {
		plan.Ranges = []RollupRange{{RollupMinute, since, until}}
		return plan
	}
	if since.Before(hSince) {
		plan.Ranges = append(plan.Ranges, RollupRange{RollupMinute, since, hSince})
	}
	plan.Ranges = append(plan.Ranges, RollupRange{RollupHour, hSince, hUntil})
	if hUntil.Before(until) {
		plan.Ranges = append(plan.Ranges, RollupRange{RollupMinute, hUntil, until})
	}
	return plan
}

func roundUp(d, unit time.Duration) time.Duration {
	return (d + unit - 1) / unit * unit
}

// StatsBuilder sums rollup rows into the answer of Stats.
type StatsBuilder struct {
	step   time.Duration
	stats  map[string]*Stats
	points map[pointKey]*Aggregate
}

type pointKey struct {
	routine string
	start   time.Time
}

// NewStatsBuilder starts the sums of a plan.
func (p StatsPlan) NewStatsBuilder() *StatsBuilder {
	return &StatsBuilder{step: p.Step, stats: map[string]*Stats{}, points: map[pointKey]*Aggregate{}}
}

// RollupRow is a row of a driver's rollups, as Stats reads it.
type RollupRow struct {
	Routine string
	Start   time.Time
	// Runs that ended, by final state.
	Succeeded, Failed, Dead, Cancelled int64
	// The counts of the histograms (len(HistogramBounds)+1 each) and their
	// sums, in microseconds.
	Duration, QueueWait           []int64
	DurationSumUs, QueueWaitSumUs int64
	CPUMs                         int64
	GBSeconds                     float64
	BytesSent, BytesReceived      int64
}

// AddRow adds a rollup row.
func (b *StatsBuilder) AddRow(r *RollupRow) {
	a := &Aggregate{
		ByState: map[routine.State]int64{routine.StateSucceeded: r.Succeeded, routine.StateFailed: r.Failed,
			routine.StateDead: r.Dead, routine.StateCancelled: r.Cancelled},
		Duration:   Histogram{Counts: r.Duration, Sum: time.Duration(r.DurationSumUs) * time.Microsecond},
		QueueWait:  Histogram{Counts: r.QueueWait, Sum: time.Duration(r.QueueWaitSumUs) * time.Microsecond},
		CPUSeconds: float64(r.CPUMs) / 1000,
		Usage:      routine.Usage{GBSeconds: r.GBSeconds, BytesSent: r.BytesSent, BytesReceived: r.BytesReceived},
	}
	b.add(r.Routine, r.Start, a)
}

// AddTokens adds the tokens of a model of a rollup row (kept apart from
// the row by the drivers, one row per model).
func (b *StatsBuilder) AddTokens(name string, start time.Time, model string, t routine.Tokens) {
	b.add(name, start, &Aggregate{Usage: routine.Usage{Tokens: map[string]routine.Tokens{model: t}}})
}

func (b *StatsBuilder) add(name string, start time.Time, row *Aggregate) {
	st := b.stats[name]
	if st == nil {
		st = &Stats{Routine: name, Step: b.step}
		b.stats[name] = st
	}
	st.Totals.add(row)
	if b.step == 0 {
		return
	}
	k := pointKey{name, start.UTC().Truncate(b.step)}
	pt := b.points[k]
	if pt == nil {
		pt = &Aggregate{Start: k.start}
		b.points[k] = pt
	}
	pt.add(row)
}

// Stats returns the sums, by routine name, each series oldest first.
func (b *StatsBuilder) Stats() []*Stats {
	for k, pt := range b.points {
		st := b.stats[k.routine]
		st.Series = append(st.Series, *pt)
	}
	out := make([]*Stats, 0, len(b.stats))
	for _, st := range b.stats {
		slices.SortFunc(st.Series, func(x, y Aggregate) int { return x.Start.Compare(y.Start) })
		out = append(out, st)
	}
	slices.SortFunc(out, func(x, y *Stats) int { return cmp.Compare(x.Routine, y.Routine) })
	return out
}

// add adds the sums of a2 to a.
func (a *Aggregate) add(a2 *Aggregate) {
	for st, n := range a2.ByState {
		if n == 0 {
			continue
		}
		if a.ByState == nil {
			a.ByState = map[routine.State]int64{}
		}
		a.ByState[st] += n
	}
	a.Duration.Merge(a2.Duration)
	a.QueueWait.Merge(a2.QueueWait)
	a.CPUSeconds += a2.CPUSeconds
	a.Usage.Add(a2.Usage)
}
