package cronexpr

import (
	"testing"
	"time"
)

func TestParseErrorsNameTheField(t *testing.T) {
	t.Parallel()
	// robfig/cron accepts these, meaning something else (a time zone the
	// trigger's timezone: sets; @every under 1s fires every second) or
	// nothing (a field selecting no value never fires); it panics on
	// "TZ=UTC".
	stricter := map[string]bool{", * * * *": true, "@every 100ms": true, "TZ=Europe/Berlin 0 8 * * *": true, "CRON_TZ=UTC 0 8 * * *": true, "TZ=UTC": true}
	tests := []struct{ expr, want string }{
		{"0 8 * * MON-FRY", `day-of-week field "MON-FRY": FRY is not a day name; write SUN MON TUE WED THU FRI SAT or 0-6 (did you mean FRI?)`},
		{"0 8 * JAN-DCE *", `month field "JAN-DCE": DCE is not a month name; write JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC or 1-12 (did you mean DEC?)`},
		{"0 8 * * XYZ", `day-of-week field "XYZ": XYZ is not a day name; write SUN MON TUE WED THU FRI SAT or 0-6`},
		{"61 8 * * *", `minute field "61": 61 is above 59; minutes are 0-59`},
		{"0 24 * * *", `hour field "24": 24 is above 23; hours are 0-23`},
		{"0 8 0 * *", `day-of-month field "0": 0 is below 1; days of the month are 1-31`},
		{"0 8 * 13 *", `month field "13": 13 is above 12; months are 1-12 (JAN-DEC)`},
		{"0 8 * * 1-7", `day-of-week field "1-7": 7 is above 6; days of the week are 0-6 (SUN-SAT); write 0 or SUN for Sunday`},
		{"60 0 8 * * *", `second field "60": 60 is above 59; seconds are 0-59`},
		{"0 8 * * 5-1", `day-of-week field "5-1": the range 5-1 runs backwards; write the smaller value first, such as 1-5`},
		{"*/0 * * * *", `minute field "*/0": the step in */0 must be a whole number of 1 or more, such as */10`},
		{"*/5/2 * * * *", `minute field "*/5/2": */5/2 has more than one /; write a step once, such as */10`},
		{"8am * * * *", `minute field "8am": 8am is not a number; write 0-59`},
		{"1-2-3 * * * *", `minute field "1-2-3": 1-2-3 is not a value or a range; write one such as 0-5`},
		{"0 8 * * 1-2-3", `day-of-week field "1-2-3": 1-2-3 is not a value or a range; write one such as MON-FRI`},
		{", * * * *", `minute field ",": no value; write 0-59`},
		{"0 8 * *", `4 fields; write 5 (minute hour day-of-month month day-of-week) such as "0 8 * * 1-5", 6 with seconds first (second minute hour day-of-month month day-of-week), or a descriptor such as @daily`},
		{"0 0 8 * * * *", `7 fields; write 5 (minute hour day-of-month month day-of-week) such as "0 8 * * 1-5", 6 with seconds first (second minute hour day-of-month month day-of-week), or a descriptor such as @daily; a year field is not supported`},
		{"", `the expression is empty; write 5 fields (minute hour day-of-month month day-of-week) such as "0 8 * * 1-5"`},
		{"TZ=Europe/Berlin 0 8 * * *", `a TZ= prefix sets the time zone; write timezone: Europe/Berlin beside cron: and drop the prefix`},
		{"CRON_TZ=UTC 0 8 * * *", `a CRON_TZ= prefix sets the time zone; write timezone: UTC beside cron: and drop the prefix`},
		{"TZ=UTC", `a TZ= prefix sets the time zone; write timezone: UTC beside cron: and drop the prefix`},
		{"@fortnightly", `@fortnightly is not a descriptor; write one of @yearly @annually @monthly @weekly @daily @midnight @hourly, or @every DURATION`},
		{"@dayly", `@dayly is not a descriptor; write one of @yearly @annually @monthly @weekly @daily @midnight @hourly, or @every DURATION; did you mean "@daily"?`},
		{"@every 5x", `@every takes a duration such as 30s, 5m or 1h30m, got "5x"`},
		{"@every", `@every takes a duration such as 30s, 5m or 1h30m`},
		{"@every 100ms", `@every must be at least 1s, got 100ms`},
		// Six fields read seconds first: a weekday in the month field is
		// the five-field expression it was meant as.
		{"0 8 * * MON-FRI *", `month field "MON-FRI": MON is not a month name; write JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC or 1-12; six fields are read seconds first, as second minute hour day-of-month month day-of-week, so "MON-FRI" is the month: if you meant day-of-week MON-FRI, drop the sixth field: "0 8 * * MON-FRI"`},
		{"0 8 * * 0 *", `month field "0": 0 is below 1; months are 1-12 (JAN-DEC); six fields are read seconds first, as second minute hour day-of-month month day-of-week, so "0" is the month: if you meant day-of-week 0, drop the sixth field: "0 8 * * 0"`},
		{"0 8 * * MON 1", `month field "MON": MON is not a month name; write JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC or 1-12; six fields are read seconds first, as second minute hour day-of-month month day-of-week, so "MON" is the month`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.expr)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q):\n got %v\nwant %s", tt.expr, err, tt.want)
		}
		if stricter[tt.expr] {
			continue
		}
		if _, err := parser.Parse(tt.expr); err == nil {
			t.Errorf("robfig/cron accepts %q, which Parse refuses", tt.expr)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		"0 8 * * 1-5", "0 8 * * mon-fri", "*/10 * * * *", "0 8 1,15 JAN-MAR,DEC *", "5/15 * * * *", "0 0 * * ?",
		"*/2 * * * * *", "30 0 8 * * *", "@daily", "@midnight", "@every 5m", "@every 1h30m",
	} {
		if _, err := Parse(expr); err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
		}
	}
}

// The schedule is robfig/cron's: five fields fire at second 0, six read
// seconds first.
func TestParseSchedule(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 3, 2, 7, 59, 0, 0, time.UTC) // a Monday
	for _, tt := range []struct {
		expr string
		want time.Time
	}{
		{"0 8 * * 1-5", time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)},
		{"0 8 * * 1-5 *", time.Date(2026, 3, 2, 8, 8, 0, 0, time.UTC)}, // minute 8 of every hour, January–May
		{"30 0 8 * * *", time.Date(2026, 3, 2, 8, 0, 30, 0, time.UTC)},
		{"@every 5m", from.Add(5 * time.Minute)},
	} {
		s, err := Parse(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Next(from); !got.Equal(tt.want) {
			t.Errorf("%q after %s: got %s, want %s", tt.expr, from, got, tt.want)
		}
	}
}

func TestNote(t *testing.T) {
	t.Parallel()
	const read = "six fields are read as second minute hour day-of-month month day-of-week: "
	tests := []struct{ expr, want string }{
		{"0 8 * * 1-5 *", read + `second 0, minute 8, every hour, every day, months 1-5 (January–May); if you meant minute hour day-of-month month day-of-week, drop the sixth field: "0 8 * * 1-5"`},
		{"0 8 * * ? ?", read + `second 0, minute 8, every hour, every day, every month; if you meant minute hour day-of-month month day-of-week, drop the sixth field: "0 8 * * ?"`},
		{"0 */5 * * * *", read + `second 0, every 5 minutes, every hour, every day, every month; if you meant minute hour day-of-month month day-of-week, drop the sixth field: "0 */5 * * *"`},
		// A per-second schedule is meant: no five-field form.
		{"*/2 * * * * *", read + "every 2 seconds, every minute, every hour, every day, every month"},
		// Not a five-field expression with a trailing *.
		{"0 0 8 * * MON-FRI", read + "second 0, minute 0, hour 8, days of the week MON-FRI (Monday–Friday), every month"},
		{"0 0 8 1 * 1", read + "second 0, minute 0, hour 8, day of the month 1 or day of the week 1 (Monday), every month"},
		// The first five fields are not a valid five-field expression.
		{"0 0 8 1,15 JAN-MAR,DEC *", read + "second 0, minute 0, hour 8, days of the month 1,15, months JAN-MAR,DEC (January–March, December)"},
		{"0 30 8 * * *", read + "second 0, minute 30, hour 8, every day, every month"},
		{"30 0 8 * * *", read + "second 30, minute 0, hour 8, every day, every month"},
		{"0 8 * * 1-5", ""},
		{"@daily", ""},
		{"0 8 * * MON-FRI *", ""}, // invalid: Parse says it
	}
	for _, tt := range tests {
		if got := Note(tt.expr); got != tt.want {
			t.Errorf("Note(%q):\n got %s\nwant %s", tt.expr, got, tt.want)
		}
	}
}

// FuzzParse checks that the field checks never accept what robfig/cron
// refuses (Parse would then return robfig's bare message) and that Note
// reads whatever Parse accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 8 * * 1-5", "0 8 * * 1-5 *", "*/2 * * * * *", "@every 5m", "@daily", "TZ=UTC 0 8 * * *", "0 8 * * MON-FRI", "1-2/3,5 * ? JAN *", "0 8 * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if check(expr) != nil {
			return
		}
		if _, err := parser.Parse(expr); err != nil {
			t.Fatalf("check accepts %q, robfig/cron refuses it: %v", expr, err)
		}
		_ = Note(expr)
	})
}
