package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// funcs are the helpers the templates format values with.
var funcs = template.FuncMap{
	"duration": shortDuration,
	"ms":       func(ms int64) string { return shortDuration(time.Duration(ms) * time.Millisecond) },
	"time":     formatTime,
	"bytes":    formatBytes,
	"pct":      func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	"num":      formatNumber,
	"money":    func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"state":    func(s routine.State) string { return "st-" + string(s) },
	"short":    func(id string) string { return id[:min(len(id), 10)] },
	"join":     strings.Join,
	"states":   func() []routine.State { return routine.RunStates },
	"kb":       func(v int64) int64 { return v * 1024 },
	"sub":      func(a, b int) int { return a - b },
	"share":    func(v, f float64) float64 { return v * f },
	"ratio":    ratio,
	"took":     took,
	"clock":    func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
}

// parsePages parses each page's template with the layout.
func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"routines", "runs", "run", "metrics", "costs", "alerts", "audit", "login", "error"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

// ratio is a / b, zero when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// took is how long a run took, or has been running; "—" before it started.
func took(run *routine.Run) string {
	if run.StartedAt == nil {
		return "—"
	}
	end := time.Now()
	if run.FinishedAt != nil {
		end = *run.FinishedAt
	}
	return shortDuration(end.Sub(*run.StartedAt))
}

// shortDuration writes d to about three digits: 120ms, 1.5s, 2m3s, 1h2m.
func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2gs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// formatTime writes a time in UTC, to the second; "—" for none. It takes
// a time or a pointer to one, as runs hold both.
func formatTime(v any) string {
	var t time.Time
	switch v := v.(type) {
	case time.Time:
		t = v
	case *time.Time:
		if v != nil {
			t = *v
		}
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// formatBytes writes n bytes in B, kB, MB, GB or TB (powers of 1000).
func formatBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	v, i := float64(n), 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.3g %s", v, units[i])
}

// formatDepth writes an average count of runs: two decimals below 10.
func formatDepth(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return formatNumber(math.Round(v))
}

// formatNumber writes v with about three significant digits, and whole
// numbers whole.
func formatNumber(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	// Three significant digits, never in exponent form.
	r, _ := strconv.ParseFloat(fmt.Sprintf("%.3g", v), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}
