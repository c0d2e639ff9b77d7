package store

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanStats(t *testing.T) {
	t.Parallel()
	h := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	m, hr := RollupMinute, RollupHour
	for _, tc := range []struct {
		name   string
		p      StatsParams
		ranges []RollupRange
		step   time.Duration
	}{
		{"whole hours", StatsParams{Since: h, Until: h.Add(3 * hr)}, []RollupRange{{hr, h, h.Add(3 * hr)}}, 0},
		{"edges in minutes", StatsParams{Since: h.Add(-90 * time.Second), Until: h.Add(2*hr + 30*time.Second)},
			[]RollupRange{{m, h.Add(-2 * m), h}, {hr, h, h.Add(2 * hr)}, {m, h.Add(2 * hr), h.Add(2*hr + m)}}, 0},
		{"within an hour", StatsParams{Since: h.Add(5 * m), Until: h.Add(50 * m)}, []RollupRange{{m, h.Add(5 * m), h.Add(50 * m)}}, 0},
		{"a series of minutes reads minutes", StatsParams{Since: h, Until: h.Add(3 * hr), Step: 5 * m},
			[]RollupRange{{m, h, h.Add(3 * hr)}}, 5 * m},
		{"a step in seconds widens to a minute", StatsParams{Since: h, Until: h.Add(hr), Step: 10 * time.Second},
			[]RollupRange{{m, h, h.Add(hr)}}, m},
		{"a step over an hour widens to hours", StatsParams{Since: h, Until: h.Add(24 * hr), Step: 61 * m},
			[]RollupRange{{hr, h, h.Add(24 * hr)}}, 2 * hr},
		{"too many points", StatsParams{Since: h, Until: h.Add(30 * 24 * hr), Step: m},
			[]RollupRange{{hr, h, h.Add(30 * 24 * hr)}}, hr},
		{"empty", StatsParams{Since: h, Until: h}, nil, 0},
	} {
		got := PlanStats(&tc.p)
		if !reflect.DeepEqual(got.Ranges, tc.ranges) || got.Step != tc.step {
			t.Errorf("%s: PlanStats = %+v, want %+v step %v", tc.name, got, tc.ranges, tc.step)
		}
	}
}
