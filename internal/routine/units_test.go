package routine

import (
	"strings"
	"testing"
	"time"
)

func TestDurationWithDays(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"0":      0,
		"500ms":  500 * time.Millisecond,
		"1h30m":  90 * time.Minute,
		"2d":     48 * time.Hour,
		"1.5d":   36 * time.Hour,
		"1d12h":  36 * time.Hour,
		"7d30m":  7*24*time.Hour + 30*time.Minute,
		" 1d2h ": 26 * time.Hour,
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || d.D() != want {
			t.Errorf("%q: %v, %v; want %v", in, d.D(), err, want)
		}
	}
	for in, msg := range map[string]string{
		"":           "such as 500ms",
		"10":         "such as 500ms, 30s, 10m, 1h30m, 2d or 1d12h",
		"d":          "such as",
		"1dd":        "such as",
		"1d-2h":      "such as",
		"1d2":        "such as",
		"NaNd":       "such as",
		"1e300d":     "such as",
		"-1s":        "must not be negative",
		"-2d":        "must not be negative",
		"10 minutes": "such as",
	} {
		var d Duration
		err := d.UnmarshalText([]byte(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want an error with %q", in, err, msg)
		}
	}
}
