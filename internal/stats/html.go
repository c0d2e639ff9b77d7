package stats

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

// reportHTML is the value report as one self-contained page: inline CSS
// and SVG, nothing fetched, readable in dark mode and on paper.
//
//go:embed report.html
var reportHTML string

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"day":        func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"stamp":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"pct":        func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"hours":      func(h float64) string { return fmt.Sprintf("%.1f h", h) },
	"mttr":       mttrText,
	"join":       func(s []string) string { return strings.Join(s, ", ") },
	"table":      func(rows []api.ReportRow, routines bool) rowsView { return rowsView{rows, routines} },
	"trendChart": trendChart,
	"savedChart": savedChart,
	"spark":      spark,
}).Parse(reportHTML))

// rowsView is a table of rows: of routines, or of tags.
type rowsView struct {
	Rows []api.ReportRow
	Tags bool // the rows are routines, with a column of their tags
}

// reportView is what the page shows of a report.
type reportView struct {
	*api.Report
	StepName string          // of the trend's points: week, day or hour
	Saved    []api.ReportRow // the routines that saved time, the most first
}

// WriteHTML writes the report as one HTML page a manager can open, mail
// or print: no script, no external resource.
func WriteHTML(w io.Writer, rep *api.Report) error {
	v := reportView{Report: rep, StepName: "hour"}
	switch time.Duration(rep.TrendStepSeconds * float64(time.Second)) {
	case 7 * 24 * time.Hour:
		v.StepName = "week"
	case 24 * time.Hour:
		v.StepName = "day"
	}
	for _, r := range rep.Routines {
		if r.HoursSaved > 0 {
			v.Saved = append(v.Saved, r)
		}
	}
	slices.SortStableFunc(v.Saved, func(a, b api.ReportRow) int { return cmp.Compare(b.HoursSaved, a.HoursSaved) })
	return reportPage.Execute(w, v)
}

// mttrText shows a mean time to recovery, "–" when nothing recovered.
func mttrText(s *float64) string {
	if s == nil {
		return "–"
	}
	d := time.Duration(*s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%.1f d", d.Hours()/24)
}

// trendChart draws the error rate per step as bars, 0 to the highest
// rate (at least 10 %), with the dates of the first and last step.
func trendChart(t api.Trend) template.HTML {
	const w, h, top, bottom = 720.0, 160.0, 12.0, 20.0
	peak := 0.1
	for _, p := range t.Points {
		peak = math.Max(peak, p.ErrorRate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="error rate per step, up to %.1f%%">`, w, h, 100*peak)
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%.0f" x2="%.0f" y2="%.0f"/>`, h-bottom, w, h-bottom)
	fmt.Fprintf(&b, `<text x="0" y="10">%.1f%%</text>`, 100*peak)
	n := float64(max(len(t.Points), 1))
	slot := w / n
	for i, p := range t.Points {
		if p.Runs == 0 {
			continue
		}
		bh := math.Max(1, (h-top-bottom)*p.ErrorRate/peak)
		fmt.Fprintf(&b, `<rect class="err" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d of %d runs failed (%.1f%%)</title></rect>`,
			float64(i)*slot+slot*0.15, h-bottom-bh, slot*0.7, bh, p.Start.UTC().Format("2006-01-02 15:04"), p.Errors, p.Runs, 100*p.ErrorRate)
	}
	if len(t.Points) > 0 {
		fmt.Fprintf(&b, `<text x="0" y="%.0f">%s</text>`, h-4, t.Points[0].Start.UTC().Format("2006-01-02"))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`, w, h-4, t.Points[len(t.Points)-1].Start.UTC().Format("2006-01-02"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// savedChart draws the hours saved per routine as horizontal bars.
func savedChart(rows []api.ReportRow) template.HTML {
	const w, label, row = 720.0, 200.0, 24.0
	peak := rows[0].HoursSaved
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="hours saved per routine">`, w, row*float64(len(rows)))
	for i, r := range rows {
		y := float64(i) * row
		bw := math.Max(1, (w-label-70)*r.HoursSaved/peak)
		fmt.Fprintf(&b, `<text x="0" y="%.0f">%s</text>`, y+16, template.HTMLEscapeString(r.Name))
		fmt.Fprintf(&b, `<rect class="bar" x="%.0f" y="%.0f" width="%.1f" height="16"/>`, label, y+4, bw)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f">%.1f h</text>`, label+bw+6, y+16, r.HoursSaved)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// spark draws a trend small enough for a table cell.
func spark(t api.Trend) template.HTML {
	const w, h = 80.0, 18.0
	peak := 0.1
	for _, p := range t.Points {
		peak = math.Max(peak, p.ErrorRate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" style="display:inline-block;vertical-align:middle" aria-hidden="true">`, w, h, w, h)
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%.0f" x2="%.0f" y2="%.0f"/>`, h-0.5, w, h-0.5)
	slot := w / float64(max(len(t.Points), 1))
	for i, p := range t.Points {
		if p.Errors == 0 {
			continue
		}
		bh := math.Max(1, h*p.ErrorRate/peak)
		fmt.Fprintf(&b, `<rect class="err" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, float64(i)*slot, h-bh, math.Max(1, slot-1), bh)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
