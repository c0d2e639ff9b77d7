package dashboard

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// The charts are SVG written here, as text: whatever comes from runs
// (routine and step names) goes through html.EscapeString, and the rest
// is numbers. Colours come from the stylesheet's classes, so that dark
// mode restyles them and the pages need no inline style.

// point is one value of a series at a time; NaN is a gap (no data).
type point struct {
	T time.Time
	V float64
}

// series is one line of a chart; Class picks its colour (s0…s5, bad).
type series struct {
	Name   string
	Class  string
	Points []point
}

// The size of a line chart's drawing, in its viewBox's units.
const (
	chartW, chartH                     = 640.0, 200.0
	padLeft, padRight, padTop, padDown = 56.0, 12.0, 10.0, 24.0
)

// lineChart draws series over [from, to) with a time axis and a value
// axis from zero, whose labels format writes.
func lineChart(label string, from, to time.Time, lines []series, format func(float64) string) template.HTML {
	top := 0.0
	for _, s := range lines {
		for _, p := range s.Points {
			if !math.IsNaN(p.V) {
				top = math.Max(top, p.V)
			}
		}
	}
	top = niceCeil(top)
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		return padLeft + (chartW-padLeft-padRight)*t.Sub(from).Seconds()/span
	}
	y := func(v float64) float64 { return chartH - padDown - (chartH-padTop-padDown)*v/top }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		chartW, chartH, html.EscapeString(label), html.EscapeString(label))
	for i := range 3 {
		v := top * float64(i) / 2
		fmt.Fprintf(&b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, padLeft, chartW-padRight, y(v), y(v))
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, y(v)+4, html.EscapeString(format(v)))
	}
	layout := "15:04"
	if to.Sub(from) > 36*time.Hour {
		layout = "Jan 2"
	}
	for i := range 5 {
		t := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 4))
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="%s">%s</text>`, x(t), chartH-6, anchor, t.UTC().Format(layout))
	}
	for _, s := range lines {
		fmt.Fprintf(&b, `<g class="%s"><title>%s</title>`, s.Class, html.EscapeString(s.Name))
		for _, run := range contiguous(s.Points) {
			if len(run) == 1 {
				fmt.Fprintf(&b, `<circle r="2.5" cx="%.1f" cy="%.1f"/>`, x(run[0].T), y(run[0].V))
				continue
			}
			b.WriteString(`<polyline points="`)
			for _, p := range run {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(p.T), y(p.V))
			}
			b.WriteString(`"/>`)
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// contiguous splits points at their gaps (NaN).
func contiguous(points []point) [][]point {
	var out [][]point
	start := -1
	for i, p := range points {
		switch {
		case math.IsNaN(p.V) && start >= 0:
			out = append(out, points[start:i])
			start = -1
		case !math.IsNaN(p.V) && start < 0:
			start = i
		}
	}
	if start >= 0 {
		out = append(out, points[start:])
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so that the
// axis' labels are round; 1 for nothing to draw.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// sparkline draws values (evenly spaced, NaN as zero) in a small box
// without axes; a second series, if any, draws over the first (errors
// over invocations).
func sparkline(label string, lines ...series) template.HTML {
	const w, h = 120.0, 28.0
	top, n := 0.0, 0
	for _, s := range lines {
		n = max(n, len(s.Points))
		for _, p := range s.Points {
			if !math.IsNaN(p.V) {
				top = math.Max(top, p.V)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %g %g" preserveAspectRatio="none" role="img" aria-label="%s"><title>%s</title>`,
		w, h, html.EscapeString(label), html.EscapeString(label))
	if top == 0 || n < 2 {
		fmt.Fprintf(&b, `<line class="grid" x1="0" x2="%g" y1="%g" y2="%g"/>`, w, h-1, h-1)
	}
	for _, s := range lines {
		if top == 0 || n < 2 {
			break
		}
		fmt.Fprintf(&b, `<polyline class="%s" points="`, s.Class)
		for i, p := range s.Points {
			v := p.V
			if math.IsNaN(v) {
				v = 0
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", w*float64(i)/float64(n-1), h-1-(h-2)*v/top)
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// bar is one bar of a timeline: a step's attempt from Start to End.
type bar struct {
	Start, End time.Time
	Class      string // st-<state>, or st-failed for an attempt that failed
	Title      string // what hovering it says
}

// timelineRow is one row of a timeline: a step, with a bar per attempt.
type timelineRow struct {
	Label string
	Bars  []bar
}

// timeline draws rows of bars against the time from from to to, with
// the row's labels on the left and a time axis in seconds from from.
func timeline(label string, from, to time.Time, rows []timelineRow) template.HTML {
	const w, rowH, labelW, axisH = 1100.0, 24.0, 190.0, 20.0
	span := math.Max(to.Sub(from).Seconds(), 0.001)
	x := func(t time.Time) float64 { return labelW + (w-labelW-8)*t.Sub(from).Seconds()/span }
	h := rowH*float64(len(rows)) + axisH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		w, h, html.EscapeString(label), html.EscapeString(label))
	for i, r := range rows {
		top := rowH * float64(i)
		name := r.Label
		if len([]rune(name)) > 26 {
			name = string([]rune(name)[:25]) + "…"
		}
		fmt.Fprintf(&b, `<text class="label" x="0" y="%.1f">%s</text>`, top+16, html.EscapeString(name))
		for _, bb := range r.Bars {
			x0, x1 := x(bb.Start), x(bb.End)
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%g" rx="2"><title>%s</title></rect>`,
				bb.Class, x0, top+4, math.Max(x1-x0, 2), rowH-8, html.EscapeString(bb.Title))
		}
	}
	for i := range 5 {
		t := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 4))
		anchor := "middle"
		if i == 4 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="%s">+%s</text>`, x(t), h-4, anchor, html.EscapeString(shortDuration(t.Sub(from))))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
