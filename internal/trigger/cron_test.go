package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
)

type schedBundle struct {
	clock   *clock.Virtual
	fires   chan Fire
	active  atomic.Bool
	last    time.Time    // what LastFire returns
	skipped atomic.Int32 // ticks Skipped heard of
}

func setupScheduler(t *testing.T, now time.Time, last time.Time) (*Scheduler, *schedBundle) {
	t.Helper()
	b := &schedBundle{clock: clock.NewVirtual(now), fires: make(chan Fire, 100), last: last}
	s := NewScheduler(SchedulerConfig{
		Sink: func(_ context.Context, f Fire) error {
			b.fires <- f
			return nil
		},
		Clock:    b.clock,
		Active:   func(string) bool { return b.active.Load() },
		Skipped:  func(string, string) { b.skipped.Add(1) },
		LastFire: func(string, int) time.Time { return b.last },
	})
	t.Cleanup(s.Stop)
	return s, b
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func start(t *testing.T, s *Scheduler, name string, triggers ...routine.Trigger) {
	t.Helper()
	if err := s.Set(name, triggers); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// nextFire returns the scheduled_at of the next firing.
func (b *schedBundle) nextFire(t *testing.T) string {
	t.Helper()
	select {
	case f := <-b.fires:
		var p struct {
			ScheduledAt string `json:"scheduled_at"`
			Trigger     string `json:"trigger"`
		}
		if err := json.Unmarshal(f.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Trigger != f.Kind || f.Routine != "r" {
			t.Fatalf("fire %+v, payload %s", f, f.Payload)
		}
		if !f.At.Equal(b.clock.Now()) {
			t.Fatalf("fire at %s, clock at %s", f.At, b.clock.Now())
		}
		if got := f.Scheduled.Format(time.RFC3339Nano); got != p.ScheduledAt {
			t.Fatalf("fire for the tick %s, payload scheduled_at %s", got, p.ScheduledAt)
		}
		return p.ScheduledAt
	case <-time.After(5 * time.Second):
		t.Fatal("no fire within 5s")
		return ""
	}
}

// noFire checks that nothing fired; the caller has seen the scheduler
// re-arm, so any firing would already be in the channel.
func (b *schedBundle) noFire(t *testing.T) {
	t.Helper()
	select {
	case f := <-b.fires:
		t.Fatalf("unexpected fire %s", f.Payload)
	default:
	}
}

// ticks advances through the next n ticks and returns the instants the
// scheduler slept until and the scheduled_at of each firing.
func ticks(t *testing.T, b *schedBundle, n int) (arms, fired []string) {
	t.Helper()
	for range n {
		at := nextArm(t, b.clock)
		arms = append(arms, at.UTC().Format(time.RFC3339))
		b.clock.Set(at)
		fired = append(fired, b.nextFire(t))
	}
	return arms, fired
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
}

func TestSchedulerCronFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cron string
		arms       []string
	}{
		{"five fields", "*/15 * * * *", []string{"2026-05-04T10:15:00Z", "2026-05-04T10:30:00Z", "2026-05-04T10:45:00Z"}},
		{"six fields", "*/10 * * * * *", []string{"2026-05-04T10:07:20Z", "2026-05-04T10:07:30Z", "2026-05-04T10:07:40Z"}},
		{"weekdays", "0 8 * * 1-5", []string{"2026-05-05T08:00:00Z", "2026-05-06T08:00:00Z", "2026-05-07T08:00:00Z"}},
		{"descriptor", "@daily", []string{"2026-05-05T00:00:00Z", "2026-05-06T00:00:00Z", "2026-05-07T00:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:07:12Z"), time.Time{})
			start(t, s, "r", routine.Trigger{Cron: tc.cron})
			arms, fired := ticks(t, b, 3)
			equal(t, "armed", arms, tc.arms)
			equal(t, "scheduled_at", fired, tc.arms)
		})
	}
}

// 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer; the
// schedule follows the wall clock of the zone across both changes.
func TestSchedulerTimezoneDST(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, start string
		arms, fired []string
	}{
		{"spring forward", "2026-03-27T12:00:00Z",
			[]string{"2026-03-28T07:00:00Z", "2026-03-29T06:00:00Z", "2026-03-30T06:00:00Z"},
			[]string{"2026-03-28T08:00:00+01:00", "2026-03-29T08:00:00+02:00", "2026-03-30T08:00:00+02:00"}},
		{"fall back", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T06:00:00Z", "2026-10-25T07:00:00Z", "2026-10-26T07:00:00Z"},
			[]string{"2026-10-24T08:00:00+02:00", "2026-10-25T08:00:00+01:00", "2026-10-26T08:00:00+01:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, b := setupScheduler(t, mustTime(t, tc.start), time.Time{})
			start(t, s, "r", routine.Trigger{Cron: "0 8 * * *", Timezone: "Europe/Berlin"})
			arms, fired := ticks(t, b, 3)
			equal(t, "armed", arms, tc.arms)
			equal(t, "scheduled_at", fired, tc.fired)
		})
	}
}

// A time of day inside the hour repeated when clocks go back fires once.
func TestSchedulerRepeatedHourFiresOnce(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-10-24T12:00:00Z"), time.Time{})
	start(t, s, "r", routine.Trigger{Cron: "30 2 * * *", Timezone: "Europe/Berlin"})
	arms, fired := ticks(t, b, 2)
	equal(t, "armed", arms, []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"})
	equal(t, "scheduled_at", fired, []string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"})
}

func TestSchedulerEvery(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), time.Time{})
	start(t, s, "r", routine.Trigger{Every: routine.Duration(30 * time.Second)})
	want := []string{"2026-05-04T10:00:30Z", "2026-05-04T10:01:00Z", "2026-05-04T10:01:30Z"}
	arms, fired := ticks(t, b, 3)
	equal(t, "armed", arms, want)
	equal(t, "scheduled_at", fired, want)
}

// every: keeps the cadence of its last firing across a restart.
func TestSchedulerEveryKeepsCadence(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), mustTime(t, "2026-05-04T09:59:50Z"))
	start(t, s, "r", routine.Trigger{Every: routine.Duration(30 * time.Second)})
	arms, _ := ticks(t, b, 2)
	equal(t, "armed", arms, []string{"2026-05-04T10:00:20Z", "2026-05-04T10:00:50Z"})
}

func TestSchedulerOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		overlap string
		fires   bool
	}{{"", false}, {"skip", false}, {"queue", true}, {"allow", true}} {
		t.Run("overlap="+tc.overlap, func(t *testing.T) {
			t.Parallel()
			s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), time.Time{})
			b.active.Store(true)
			start(t, s, "r", routine.Trigger{Cron: "* * * * *", Overlap: tc.overlap})
			b.clock.Set(nextArm(t, b.clock))
			next := nextArm(t, b.clock) // the tick has been handled
			if tc.fires {
				if got := b.nextFire(t); got != "2026-05-04T10:01:00Z" {
					t.Fatalf("scheduled_at %s", got)
				}
			} else {
				b.noFire(t)
			}
			if n, want := b.skipped.Load(), map[bool]int32{true: 0, false: 1}[tc.fires]; n != want {
				t.Errorf("Skipped heard of %d ticks, want %d", n, want)
			}
			// Once no run is active, every mode fires.
			b.active.Store(false)
			b.clock.Set(next)
			if got := b.nextFire(t); got != "2026-05-04T10:02:00Z" {
				t.Fatalf("scheduled_at %s", got)
			}
		})
	}
}

func TestSchedulerCatchup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trigger routine.Trigger
		last    string // last firing, before now = 10:30:00
		fired   string // the catch-up firing, "" for none
		arm     string
	}{
		{"one fires the latest missed tick", routine.Trigger{Cron: "0 * * * *", Catchup: "one"}, "2026-05-04T08:00:00Z", "2026-05-04T10:00:00Z", "2026-05-04T11:00:00Z"},
		{"one with seconds", routine.Trigger{Cron: "*/5 * * * * *", Catchup: "one"}, "2026-04-27T10:30:00Z", "2026-05-04T10:30:00Z", "2026-05-04T10:30:05Z"},
		{"one, nothing missed", routine.Trigger{Cron: "0 * * * *", Catchup: "one"}, "2026-05-04T10:00:00Z", "", "2026-05-04T11:00:00Z"},
		{"one, never fired", routine.Trigger{Cron: "0 * * * *", Catchup: "one"}, "", "", "2026-05-04T11:00:00Z"},
		{"none", routine.Trigger{Cron: "0 * * * *", Catchup: "none"}, "2026-05-04T08:00:00Z", "", "2026-05-04T11:00:00Z"},
		{"default is none", routine.Trigger{Cron: "0 * * * *"}, "2026-05-04T08:00:00Z", "", "2026-05-04T11:00:00Z"},
		{"every one", routine.Trigger{Every: routine.Duration(30 * time.Second), Catchup: "one"}, "2026-05-04T10:28:25Z", "2026-05-04T10:29:55Z", "2026-05-04T10:30:25Z"},
		{"every none", routine.Trigger{Every: routine.Duration(30 * time.Second), Catchup: "none"}, "2026-05-04T10:28:25Z", "", "2026-05-04T10:30:25Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var last time.Time
			if tc.last != "" {
				last = mustTime(t, tc.last)
			}
			s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:30:00Z"), last)
			start(t, s, "r", tc.trigger)
			arm := nextArm(t, b.clock) // catching up happens before arming
			if tc.fired == "" {
				b.noFire(t)
			} else if got := b.nextFire(t); got != tc.fired {
				t.Fatalf("caught up %s, want %s", got, tc.fired)
			}
			b.noFire(t) // once, not once per missed tick
			if got := arm.UTC().Format(time.RFC3339); got != tc.arm {
				t.Fatalf("armed %s, want %s", got, tc.arm)
			}
		})
	}
}

func TestSchedulerStop(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), time.Time{})
	start(t, s, "r", routine.Trigger{Cron: "* * * * *"})
	at := nextArm(t, b.clock)
	s.Stop() // returns once the loop has
	b.clock.Set(at.Add(time.Hour))
	b.noFire(t)
	s.Stop() // idempotent
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("started twice")
	}
}

func TestSchedulerContextEnds(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), time.Time{})
	if err := s.Set("r", []routine.Trigger{{Cron: "* * * * *"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	at := nextArm(t, b.clock)
	cancel()
	<-s.done
	b.clock.Set(at)
	b.noFire(t)
}

// Set after Start reschedules a routine; Set with no triggers removes it.
func TestSchedulerSet(t *testing.T) {
	t.Parallel()
	s, b := setupScheduler(t, mustTime(t, "2026-05-04T10:00:00Z"), time.Time{})
	start(t, s, "r", routine.Trigger{Cron: "0 * * * *"})
	if got := nextArm(t, b.clock); !got.Equal(mustTime(t, "2026-05-04T11:00:00Z")) {
		t.Fatalf("armed %s", got)
	}
	if err := s.Set("r", []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "/x"}}, {Cron: "*/5 * * * *"}}); err != nil {
		t.Fatal(err)
	}
	if got := nextArm(t, b.clock); !got.Equal(mustTime(t, "2026-05-04T10:05:00Z")) {
		t.Fatalf("armed %s after Set", got)
	}
	b.clock.Set(mustTime(t, "2026-05-04T10:05:00Z"))
	select {
	case f := <-b.fires:
		if f.Trigger != 1 || f.Kind != "cron" {
			t.Fatalf("fire %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fire")
	}
	nextArm(t, b.clock)
	// Removing r leaves only other's schedule.
	if err := s.Set("other", []routine.Trigger{{Cron: "0 12 * * *"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("r", nil); err != nil {
		t.Fatal(err)
	}
	for {
		if at := nextArm(t, b.clock); at.Equal(mustTime(t, "2026-05-04T12:00:00Z")) {
			break
		}
	}
	b.clock.Set(mustTime(t, "2026-05-04T11:59:00Z"))
	b.noFire(t)
}

func TestSchedulerSetRejects(t *testing.T) {
	t.Parallel()
	s := NewScheduler(SchedulerConfig{Sink: func(context.Context, Fire) error { return nil }})
	for _, tr := range []routine.Trigger{
		{Cron: "61 * * * *"},
		{Cron: "0 8 * * *", Timezone: "Mars/Olympus"},
		{Cron: "0 8 * * *", Timezone: "Local"},
	} {
		if err := s.Set("r", []routine.Trigger{tr}); err == nil {
			t.Errorf("Set(%+v) accepted", tr)
		}
	}
}

// NextFires lists what the Scheduler fires, in the trigger's zone.
func TestNextFiresAgreesWithScheduler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		now, last string
		trigger   routine.Trigger
	}{
		{"five fields", "2026-05-04T10:07:12Z", "", routine.Trigger{Cron: "*/15 * * * *"}},
		{"six fields", "2026-05-04T10:07:12Z", "", routine.Trigger{Cron: "0 8 * * 1-5 *"}},
		{"descriptor", "2026-05-04T10:07:12Z", "", routine.Trigger{Cron: "@every 90s"}},
		{"spring forward", "2026-03-27T12:00:00Z", "", routine.Trigger{Cron: "0 8 * * *", Timezone: "Europe/Berlin"}},
		{"repeated hour", "2026-10-24T12:00:00Z", "", routine.Trigger{Cron: "30 2 * * *", Timezone: "Europe/Berlin"}},
		{"every", "2026-05-04T10:00:00Z", "", routine.Trigger{Every: routine.Duration(30 * time.Second)}},
		{"every after a firing", "2026-05-04T10:00:00Z", "2026-05-04T09:59:50Z", routine.Trigger{Every: routine.Duration(30 * time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var last time.Time
			if tc.last != "" {
				last = mustTime(t, tc.last)
			}
			s, b := setupScheduler(t, mustTime(t, tc.now), last)
			start(t, s, "r", tc.trigger)
			_, fired := ticks(t, b, 3)
			next, err := NextFires(tc.trigger, last, mustTime(t, tc.now), 3)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range next {
				got = append(got, n.Format(time.RFC3339))
			}
			equal(t, "NextFires", got, fired)
		})
	}
}

func TestNextFires(t *testing.T) {
	t.Parallel()
	now := mustTime(t, "2026-05-04T10:07:12Z")
	berlin := now.In(time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct {
		name    string
		trigger routine.Trigger
		from    time.Time
		want    []string
	}{
		{"in the trigger's zone", routine.Trigger{Cron: "0 8 * * 1-5", Timezone: "Europe/Berlin"}, now,
			[]string{"2026-05-05T08:00:00+02:00", "2026-05-06T08:00:00+02:00"}},
		{"every in from's zone", routine.Trigger{Every: routine.Duration(time.Hour)}, berlin,
			[]string{"2026-05-04T13:07:12+02:00", "2026-05-04T14:07:12+02:00"}},
		{"never", routine.Trigger{Cron: "0 0 30 2 *"}, now, nil},
		{"not scheduled", routine.Trigger{Webhook: &routine.WebhookTrigger{Path: "/x"}}, now, nil},
	} {
		next, err := NextFires(tc.trigger, time.Time{}, tc.from, 2)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, n := range next {
			got = append(got, n.Format(time.RFC3339))
		}
		equal(t, tc.name, got, tc.want)
	}
	if _, err := NextFires(routine.Trigger{Cron: "0 8 * * MON-FRY"}, time.Time{}, now, 1); err == nil || err.Error() != `cron "0 8 * * MON-FRY": day-of-week field "MON-FRY": FRY is not a day name; write SUN MON TUE WED THU FRI SAT or 0-6 (did you mean FRI?)` {
		t.Fatalf("NextFires of a bad cron: %v", err)
	}
}

// A queue that refuses every tick of a 2 s schedule is one warning, not
// one per tick, and its end is one line.
func TestSchedulerRefusedTicksLoggedOnce(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	clk := clock.NewVirtual(mustTime(t, "2026-05-04T10:00:00Z"))
	var refuse atomic.Bool
	refuse.Store(true)
	sunk := make(chan struct{}, 100)
	s := NewScheduler(SchedulerConfig{
		Sink: func(context.Context, Fire) error {
			defer func() { sunk <- struct{}{} }()
			if refuse.Load() {
				return errors.New("queue full")
			}
			return nil
		},
		Clock:  clk,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	t.Cleanup(s.Stop)
	start(t, s, "r", routine.Trigger{Every: routine.Duration(2 * time.Second)})
	tick := func() {
		clk.Set(nextArm(t, clk))
		select {
		case <-sunk:
		case <-time.After(5 * time.Second):
			t.Fatal("no tick reached the sink")
		}
	}
	for range 20 { // 40 s of refused ticks
		tick()
	}
	refuse.Store(false)
	tick()
	tick()
	out := logs.String()
	if n := strings.Count(out, "tick not accepted: queue full"); n != 1 {
		t.Errorf("20 refused ticks logged %d times:\n%s", n, out)
	}
	if n := strings.Count(out, "ticks accepted again"); n != 1 || !strings.Contains(out, "failures=20") {
		t.Errorf("the recovery logged %d times:\n%s", n, out)
	}
}
