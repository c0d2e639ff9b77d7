package store

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanStats(t *testing.T) {
	t.Parallel()
	h := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	m, hr, d := RollupMinute, RollupHour, RollupDay
	hours := []time.Duration{m, hr}
	days := []time.Duration{m, hr, d}
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		p      StatsParams
		widths []time.Duration // of the driver; hours when nil
		ranges []RollupRange
		step   time.Duration
	}{
		{"whole hours", StatsParams{Since: h, Until: h.Add(3 * hr)}, nil, []RollupRange{{hr, h, h.Add(3 * hr)}}, 0},
		{"edges in minutes", StatsParams{Since: h.Add(-90 * time.Second), Until: h.Add(2*hr + 30*time.Second)}, nil,
			[]RollupRange{{m, h.Add(-2 * m), h}, {hr, h, h.Add(2 * hr)}, {m, h.Add(2 * hr), h.Add(2*hr + m)}}, 0},
		{"within an hour", StatsParams{Since: h.Add(5 * m), Until: h.Add(50 * m)}, nil, []RollupRange{{m, h.Add(5 * m), h.Add(50 * m)}}, 0},
		{"a series of minutes reads minutes", StatsParams{Since: h, Until: h.Add(3 * hr), Step: 5 * m}, nil,
			[]RollupRange{{m, h, h.Add(3 * hr)}}, 5 * m},
		{"a step in seconds widens to a minute", StatsParams{Since: h, Until: h.Add(hr), Step: 10 * time.Second}, nil,
			[]RollupRange{{m, h, h.Add(hr)}}, m},
		{"a step over an hour widens to hours", StatsParams{Since: h, Until: h.Add(24 * hr), Step: 61 * m}, nil,
			[]RollupRange{{hr, h, h.Add(24 * hr)}}, 2 * hr},
		{"too many points", StatsParams{Since: h, Until: h.Add(30 * 24 * hr), Step: m}, nil,
			[]RollupRange{{hr, h, h.Add(30 * 24 * hr)}}, hr},
		{"empty", StatsParams{Since: h, Until: h}, nil, nil, 0},
		// A driver that keeps days reads them for the middle of a range,
		// hours and minutes at its edges.
		{"days", StatsParams{Since: day, Until: day.Add(30 * d)}, days, []RollupRange{{d, day, day.Add(30 * d)}}, 0},
		{"days with edges", StatsParams{Since: day.Add(-90*m - 30*time.Second), Until: day.Add(2*d + 3*hr + 5*m)}, days,
			[]RollupRange{{m, day.Add(-91 * m), day.Add(-hr)}, {hr, day.Add(-hr), day}, {d, day, day.Add(2 * d)},
				{hr, day.Add(2 * d), day.Add(2*d + 3*hr)}, {m, day.Add(2*d + 3*hr), day.Add(2*d + 3*hr + 5*m)}}, 0},
		{"less than a day", StatsParams{Since: day.Add(hr), Until: day.Add(d + 2*hr)}, days,
			[]RollupRange{{hr, day.Add(hr), day.Add(d + 2*hr)}}, 0},
		{"a series of hours reads no days", StatsParams{Since: day, Until: day.Add(30 * d), Step: hr}, days,
			[]RollupRange{{hr, day, day.Add(30 * d)}}, hr},
		{"a series of days reads days", StatsParams{Since: day.Add(-m), Until: day.Add(30 * d), Step: d}, days,
			[]RollupRange{{m, day.Add(-m), day}, {d, day, day.Add(30 * d)}}, d},
		{"a series of two days reads days", StatsParams{Since: day, Until: day.Add(4 * d), Step: 48 * hr}, days,
			[]RollupRange{{d, day, day.Add(4 * d)}}, 48 * hr},
		{"a series of 36 hours reads hours", StatsParams{Since: day, Until: day.Add(3 * d), Step: 36 * hr}, days,
			[]RollupRange{{hr, day, day.Add(3 * d)}}, 36 * hr},
		{"a series of minutes reads minutes of days", StatsParams{Since: day, Until: day.Add(d), Step: 5 * m}, days,
			[]RollupRange{{m, day, day.Add(d)}}, 5 * m},
	} {
		widths := tc.widths
		if widths == nil {
			widths = hours
		}
		got := PlanStats(&tc.p, widths)
		if !reflect.DeepEqual(got.Ranges, tc.ranges) || got.Step != tc.step {
			t.Errorf("%s: PlanStats = %+v, want %+v step %v", tc.name, got, tc.ranges, tc.step)
		}
	}
}
