package repeat_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/repeat"
)

func setup(t *testing.T) (*repeat.Limiter, *clock.Virtual) {
	t.Helper()
	clk := clock.NewVirtual(time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC))
	return repeat.New(clk.Now), clk
}

// The same failure is reported at once, then 1 min, 2, 4 … after the
// report before, never more than an hour apart, each report with the
// count of the failures it left out.
func TestBackoff(t *testing.T) {
	t.Parallel()
	l, clk := setup(t)
	if rep := l.Fail("k", "down"); rep != (repeat.Report{First: true, Due: true}) {
		t.Fatalf("first failure: %+v", rep)
	}
	// Every 5 s: reports at 1 min, then 2 min after it (3 min), 7, 15,
	// 31, 63, 123, 183 (the wait is capped at an hour).
	var reports []time.Duration
	var suppressed []int
	start := clk.Now()
	for range 183 * 12 {
		clk.Advance(5 * time.Second)
		if rep := l.Fail("k", "down"); rep.Due {
			if rep.First {
				t.Fatalf("a repeat is not first: %+v", rep)
			}
			reports = append(reports, clk.Now().Sub(start))
			suppressed = append(suppressed, rep.Suppressed)
		}
	}
	want := []time.Duration{1, 3, 7, 15, 31, 63, 123, 183}
	if len(reports) != len(want) {
		t.Fatalf("reported at %v, want at %v minutes", reports, want)
	}
	for i, m := range want {
		if reports[i] != m*time.Minute {
			t.Errorf("report %d at %v, want %v", i, reports[i], m*time.Minute)
		}
	}
	if suppressed[0] != 11 || suppressed[1] != 23 || suppressed[7] != 719 {
		t.Errorf("suppressed counts %v", suppressed)
	}

	// Another message is news: reported at once, the backoff starts over.
	if rep := l.Fail("k", "refused"); !rep.First || !rep.Due {
		t.Errorf("a new message: %+v", rep)
	}
	clk.Advance(30 * time.Second)
	if rep := l.Fail("k", "refused"); rep.Due {
		t.Errorf("the new message repeated at once: %+v", rep)
	}
	// Another key is another failure.
	if rep := l.Fail("other", "down"); !rep.First {
		t.Errorf("another key: %+v", rep)
	}
	if n, since := l.OK("k"); n != 183*12+3 || !since.Equal(start) {
		t.Errorf("OK: %d failures since %v", n, since)
	}
	if n, _ := l.OK("k"); n != 0 {
		t.Errorf("a second OK: %d", n)
	}
	// After the recovery, the same failure is first again.
	if rep := l.Fail("k", "down"); !rep.First {
		t.Errorf("after OK: %+v", rep)
	}
}

// A warning repeated 12 times in 37 s is one line; the next one after a
// minute says how many were left out; the recovery is one info line.
func TestLogAndRecovered(t *testing.T) {
	t.Parallel()
	l, clk := setup(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	for i := range 12 {
		l.Log(log, slog.LevelWarn, "support-triage/0", "email trigger: password: secret IMAP_PASSWORD is not set", "routine", "support-triage", "in", time.Duration(i)*time.Second)
		clk.Advance(37 * time.Second / 12)
	}
	clk.Advance(time.Minute)
	l.Log(log, slog.LevelWarn, "support-triage/0", "email trigger: password: secret IMAP_PASSWORD is not set", "routine", "support-triage")
	if l.Recovered(log, "nothing", "recovered") {
		t.Error("a key that never failed recovered")
	}
	clk.Advance(20 * time.Second)
	if !l.Recovered(log, "support-triage/0", "email trigger recovered", "routine", "support-triage") {
		t.Error("no recovery")
	}
	l.Recovered(log, "support-triage/0", "email trigger recovered", "routine", "support-triage")
	want := `level=WARN msg="email trigger: password: secret IMAP_PASSWORD is not set" routine=support-triage in=0s
level=WARN msg="email trigger: password: secret IMAP_PASSWORD is not set" routine=support-triage repeated=11
level=INFO msg="email trigger recovered" routine=support-triage failures=13 after=1m57s
`
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}
