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

func TestDurationString(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]string{
		0:                               "0s",
		500 * time.Millisecond:          "500ms",
		90 * time.Second:                "1m30s",
		10 * time.Minute:                "10m",
		time.Hour:                       "1h",
		90 * time.Minute:                "1h30m",
		48 * time.Hour:                  "2d",
		36 * time.Hour:                  "1d12h",
		24*time.Hour + time.Second:      "1d1s",
		7*24*time.Hour + 30*time.Minute: "7d30m",
	} {
		if got := Duration(in).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", in, got, want)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(want)); err != nil || time.Duration(back) != in {
			t.Errorf("%q reads back as %v (%v)", want, time.Duration(back), err)
		}
	}
}
