package dashboard

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]float64{0: 1, 0.03: 0.05, 1: 1, 1.2: 2, 3: 5, 7: 10, 42: 50, 100: 100, 101: 200} {
		if got := niceCeil(v); math.Abs(got-want) > 1e-12 {
			t.Errorf("niceCeil(%g) = %g, want %g", v, got, want)
		}
	}
}

// A gap (NaN) splits a line; a lone point is a dot; names are text.
func TestLineChart(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return from.Add(time.Duration(i) * time.Minute) }
	nan := math.NaN()
	svg := string(lineChart("latency", from, at(6), []series{{Name: `<b onmouseover="x">`, Class: "s0", Points: []point{
		{at(0), 1}, {at(1), 2}, {at(2), nan}, {at(3), 4}, {at(4), nan}, {at(5), 3}, {at(6), 5},
	}}}, formatNumber))
	if n := strings.Count(svg, "<polyline"); n != 2 {
		t.Errorf("%d lines, want 2 around the gaps", n)
	}
	if n := strings.Count(svg, "<circle"); n != 1 {
		t.Errorf("%d dots, want 1 for the point between gaps", n)
	}
	if strings.Contains(svg, "<b ") || !strings.Contains(svg, "&lt;b onmouseover=&#34;x&#34;&gt;") {
		t.Errorf("a series' name is not escaped: %s", svg)
	}
	if !strings.Contains(svg, ">5</text>") || !strings.Contains(svg, ">00:00</text>") {
		t.Errorf("axes: %s", svg)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 3: "3", 0.0000175: "0.0000175", 0.12345: "0.123", 12.345: "12.3", 1234.5: "1234"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%g) = %q, want %q", v, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", 500 * time.Microsecond: "500µs", 120 * time.Millisecond: "120ms",
		1500 * time.Millisecond: "1.5s", 42 * time.Second: "42s", 125 * time.Second: "2m5s", 26 * time.Hour: "26h0m", 50 * time.Hour: "2d2h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
	if got := formatBytes(1500); got != "1.5 kB" {
		t.Errorf("formatBytes(1500) = %q", got)
	}
}

// The queue depth of a point is the seconds its runs waited per second of
// it (Little's law), whatever the width of the points.
func TestQueueDepth(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, step := range []time.Duration{time.Minute, time.Hour} {
		w := window{timeRange: timeRange{Step: step, Span: 3 * step}, From: from, To: from.Add(3 * step)}
		st := &store.Stats{Step: step, Series: make([]store.Aggregate, 2)}
		// Two runs that waited 1.5 steps together, in the second point.
		st.Series[0].Start = from.Add(step)
		st.Series[0].QueueWait.Observe(step)
		st.Series[1].Start = from.Add(step)
		st.Series[1].QueueWait.Observe(step / 2)
		c := newChart("Queue depth", "r", w, st, formatDepth, mDepth)
		got := c.Legend[0].Points
		if len(got) != 3 || got[0].V != 0 || got[1].V != 1.5 || got[2].V != 0 {
			t.Errorf("step %v: points %v, want 0, 1.5, 0", step, got)
		}
	}
	if got := formatDepth(1.5); got != "1.50" {
		t.Errorf("formatDepth(1.5) = %q", got)
	}
}
