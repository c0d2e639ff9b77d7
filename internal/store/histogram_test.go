package store_test

import (
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h store.Histogram
	if h.Quantile(0.95) != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram must report zero")
	}
	// 1..1000 ms: p50 ≈ 500 ms, p95 ≈ 950 ms.
	for ms := 1; ms <= 1000; ms++ {
		h.Observe(time.Duration(ms) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.01, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		if got < c.want*8/10 || got > c.want*12/10 {
			t.Errorf("quantile %.2f = %v, want about %v", c.q, got, c.want)
		}
	}
	if got, want := h.Mean(), 500500*time.Microsecond; got != want {
		t.Errorf("mean = %v, want %v", got, want)
	}

	var a, b store.Histogram
	for ms := 1; ms <= 500; ms++ {
		a.Observe(time.Duration(ms) * time.Millisecond)
		b.Observe(time.Duration(ms+500) * time.Millisecond)
	}
	a.Merge(b)
	if a.Count() != 1000 || a.Quantile(0.95) != h.Quantile(0.95) {
		t.Errorf("merged: count %d p95 %v, want 1000 and %v", a.Count(), a.Quantile(0.95), h.Quantile(0.95))
	}

	// Few runs: the sum bounds the estimate.
	var one, few store.Histogram
	one.Observe(2010 * time.Millisecond)
	for range 3 {
		few.Observe(2100 * time.Millisecond)
	}
	if got := one.Quantile(0.95); got != 2010*time.Millisecond {
		t.Errorf("p95 of one run of 2.01s = %v, want 2.01s", got)
	}
	if got := few.Quantile(0.95); got != 2300*time.Millisecond {
		t.Errorf("p95 of 3 runs of 2.1s = %v, want 2.3s (their sum less 2s for each of 2)", got)
	}

	var slow store.Histogram
	slow.Observe(1000 * time.Hour)
	if got := slow.Quantile(0.5); got != store.HistogramBounds[len(store.HistogramBounds)-1] {
		t.Errorf("beyond the last bound: %v", got)
	}
}
