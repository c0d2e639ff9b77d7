package store

import (
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// HistogramBounds are the upper bounds of a Histogram's buckets: 1, 2 and
// 5 times each power of ten from 1 ms to 50,000 s, so a quantile read
// from a histogram is within a factor of 2.5 of the truth, and usually
// much closer, since it is interpolated inside its bucket.
var HistogramBounds = func() []time.Duration {
	var b []time.Duration
	for d := time.Millisecond; d <= 10000*time.Second; d *= 10 {
		b = append(b, d, 2*d, 5*d)
	}
	return b
}()

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]int64, len(HistogramBounds)+1)
	}
	i, _ := slices.BinarySearch(HistogramBounds, d)
	h.Counts[i]++
	h.Sum += d
}

// Merge adds the counts of h2 to h.
func (h *Histogram) Merge(h2 Histogram) {
	if h2.Counts == nil {
		return
	}
	if h.Counts == nil {
		h.Counts = make([]int64, len(HistogramBounds)+1)
	}
	for i, c := range h2.Counts {
		h.Counts[i] += c
	}
	h.Sum += h2.Sum
}

// Count is the number of durations observed.
func (h *Histogram) Count() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Mean is the average duration observed, zero when none was.
func (h *Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return h.Sum / time.Duration(n)
}

// Quantile estimates the q-quantile (0 < q <= 1) of the durations
// observed, interpolating linearly inside the bucket it falls in; zero
// when none was observed. A quantile in the last, unbounded bucket is
// reported as the highest bound.
//
// The estimate never exceeds the largest duration the sum allows: each
// duration exceeds the lower bound of its bucket, so none exceeds the sum
// less those of all the others. The p95 of one run is thus its duration,
// and of a few runs that took about as long, about that.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen int64
	lowers, top := h.lowerBounds()
	for i, c := range h.Counts {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		if i == len(HistogramBounds) {
			return HistogramBounds[i-1]
		}
		var lower time.Duration
		if i > 0 {
			lower = HistogramBounds[i-1]
		}
		frac := (rank - float64(seen)) / float64(c)
		return min(lower+time.Duration(frac*float64(HistogramBounds[i]-lower)), h.Sum-lowers+top)
	}
	return HistogramBounds[len(HistogramBounds)-1]
}

// lowerBounds returns the sum of the lower bounds of the buckets of all
// the durations observed, and the lower bound of the highest bucket that
// holds one.
func (h *Histogram) lowerBounds() (sum, top time.Duration) {
	for i, c := range h.Counts {
		if c == 0 || i == 0 {
			continue
		}
		top = HistogramBounds[i-1]
		sum += time.Duration(c) * top
	}
	return sum, top
}

// Merge adds the runs of b to a: the aggregate of several routines, or of
// several points of a series.
func (a *Aggregate) Merge(b *Aggregate) {
	if a.ByState == nil {
		a.ByState = map[routine.State]int64{}
	}
	for st, n := range b.ByState {
		a.ByState[st] += n
	}
	a.Duration.Merge(b.Duration)
	a.QueueWait.Merge(b.QueueWait)
	a.CPUSeconds += b.CPUSeconds
	a.PeakRSSKB = max(a.PeakRSSKB, b.PeakRSSKB)
	a.Usage.Add(b.Usage)
}
