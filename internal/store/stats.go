package store

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// The widths of the rollups a driver keeps: each run that ends is added to
// the minute and to the hour of its end (a multiple of the width since the
// Unix epoch), and to its day where the driver keeps days. Minutes make
// short ranges, and the edges of long ones, exact to the minute; hours
// keep a month to 720 rows per routine, days to 30.
const (
	RollupMinute = time.Minute
	RollupHour   = time.Hour
	RollupDay    = 24 * time.Hour
)

// MaxSeriesPoints bounds the points of a Series: a Step that would give
// more is widened to whole hours.
const MaxSeriesPoints = 1500

// RollupRange is a range of the rollups of one width that Stats reads:
// the rows whose start is in [Since, Until).
type RollupRange struct {
	Width        time.Duration // RollupMinute, RollupHour or RollupDay
	Since, Until time.Time
}

// StatsPlan is how a driver answers Stats: which rollups it reads, and how
// it sums them (NewStatsBuilder).
type StatsPlan struct {
	Ranges []RollupRange // in the order of their times
	// Step is the width of the points of the series, 0 for none: p.Step
	// rounded up to whole minutes, or to whole hours when it is an hour or
	// more or when the range would have more than MaxSeriesPoints points.
	Step time.Duration
}

// PlanStats chooses the rollups that answer p from those of widths, the
// widths a driver keeps (RollupMinute and RollupHour, and RollupDay if it
// keeps days), finest first. The range is widened to whole minutes (the
// minute of Since counts, and so does that of Until when Until is not a
// whole minute); the whole days inside it are read from day rows, the
// whole hours left at their edges from hour rows, and the rest from minute
// rows, each width only when the points of the series are whole multiples
// of it. A zero Until is no bound.
func PlanStats(p *StatsParams, widths []time.Duration) StatsPlan {
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
	// A row belongs to one point when the step is a multiple of its width
	// (points and rows both start at multiples of their widths).
	n := 1
	for n < len(widths) && plan.Step%widths[n] == 0 {
		n++
	}
	plan.Ranges = planRanges(nil, widths[:n], since, until)
	return plan
}

// planRanges appends to ranges those that read [since, until), both whole
// multiples of widths[0], with the coarsest of widths where it fits.
func planRanges(ranges []RollupRange, widths []time.Duration, since, until time.Time) []RollupRange {
	w := widths[len(widths)-1]
	if len(widths) == 1 {
		return append(ranges, RollupRange{w, since, until})
	}
	finer := widths[:len(widths)-1]
	inSince, inUntil := since.Truncate(w), until.Truncate(w)
	if inSince.Before(since) {
		inSince = inSince.Add(w)
	}
	if !inSince.Before(inUntil) {
		return planRanges(ranges, finer, since, until)
	}
	if since.Before(inSince) {
		ranges = planRanges(ranges, finer, since, inSince)
	}
	ranges = append(ranges, RollupRange{w, inSince, inUntil})
	if inUntil.Before(until) {
		ranges = planRanges(ranges, finer, inUntil, until)
	}
	return ranges
}

func roundUp(d, unit time.Duration) time.Duration {
	return (d + unit - 1) / unit * unit
}

// StatsBuilder sums rollup rows into the answer of Stats.
type StatsBuilder struct {
	step  time.Duration
	stats map[string]*Stats
	// slab holds the counts of the points' histograms, allocated together.
	slab []int64
}

// NewStatsBuilder starts the sums of a plan.
func (p StatsPlan) NewStatsBuilder() *StatsBuilder {
	return &StatsBuilder{step: p.Step, stats: map[string]*Stats{}}
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
	MaxRSSKB                      int64 // the largest of the runs', not a sum
	GBSeconds                     float64
	BytesSent, BytesReceived      int64
}

// AddRow adds a rollup row. It keeps none of r's slices: a driver may
// reuse them for the next row. Rows of a routine added in the order of
// their starts cost least (a month of hours of many routines is tens of
// thousands of rows); any order gives the same sums.
func (b *StatsBuilder) AddRow(r *RollupRow) {
	st := b.routine(r.Routine)
	st.Totals.addRow(r)
	if pt := b.point(st, r.Start); pt != nil {
		pt.addRow(r)
	}
}

// AddTokens adds the tokens of a model of a rollup row (kept apart from
// the row by the drivers, one row per model).
func (b *StatsBuilder) AddTokens(name string, start time.Time, model string, t routine.Tokens) {
	st := b.routine(name)
	st.Totals.Usage.AddTokens(model, t)
	if pt := b.point(st, start); pt != nil {
		pt.Usage.AddTokens(model, t)
	}
}

func (b *StatsBuilder) routine(name string) *Stats {
	st := b.stats[name]
	if st == nil {
		st = &Stats{Routine: name, Step: b.step}
		b.stats[name] = st
	}
	return st
}

// point returns the point of the series of st that start is in, adding
// it where it goes; nil without a series.
func (b *StatsBuilder) point(st *Stats, start time.Time) *Aggregate {
	if b.step == 0 {
		return nil
	}
	at := start.UTC().Truncate(b.step)
	n := len(st.Series)
	i := n
	switch {
	case n == 0 || st.Series[n-1].Start.Before(at): // after the last
	case st.Series[n-1].Start.Equal(at): // the last: rows of a point come together
		i = n - 1
	default: // by index: a comparison of Aggregates by value would copy them
		i = sort.Search(n, func(k int) bool { return !st.Series[k].Start.Before(at) })
	}
	if i == n || !st.Series[i].Start.Equal(at) {
		st.Series = slices.Insert(st.Series, i, Aggregate{Start: at,
			Duration: Histogram{Counts: b.counts()}, QueueWait: Histogram{Counts: b.counts()}})
	}
	return &st.Series[i]
}

// counts returns the zero counts of a histogram, cut from a slab.
func (b *StatsBuilder) counts() []int64 {
	size := len(HistogramBounds) + 1
	if len(b.slab) < size {
		b.slab = make([]int64, 256*size)
	}
	c := b.slab[:size:size]
	b.slab = b.slab[size:]
	return c
}

// Stats returns the sums, by routine name, each series oldest first.
func (b *StatsBuilder) Stats() []*Stats {
	out := make([]*Stats, 0, len(b.stats))
	for _, st := range b.stats {
		out = append(out, st)
	}
	slices.SortFunc(out, func(x, y *Stats) int { return cmp.Compare(x.Routine, y.Routine) })
	return out
}

// addRow adds the sums of a rollup row to a.
func (a *Aggregate) addRow(r *RollupRow) {
	for _, c := range []struct {
		st routine.State
		n  int64
	}{{routine.StateSucceeded, r.Succeeded}, {routine.StateFailed, r.Failed}, {routine.StateDead, r.Dead}, {routine.StateCancelled, r.Cancelled}} {
		if c.n == 0 {
			continue
		}
		if a.ByState == nil {
			a.ByState = map[routine.State]int64{}
		}
		a.ByState[c.st] += c.n
	}
	a.Duration.Merge(Histogram{Counts: r.Duration, Sum: time.Duration(r.DurationSumUs) * time.Microsecond})
	a.QueueWait.Merge(Histogram{Counts: r.QueueWait, Sum: time.Duration(r.QueueWaitSumUs) * time.Microsecond})
	a.CPUSeconds += float64(r.CPUMs) / 1000
	a.PeakRSSKB = max(a.PeakRSSKB, r.MaxRSSKB)
	a.Usage.GBSeconds += r.GBSeconds
	a.Usage.BytesSent += r.BytesSent
	a.Usage.BytesReceived += r.BytesReceived
}
