package cli_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
)

// validate shows when each cron: and every: trigger fires next, in the
// trigger's time zone, and how a six-field cron is read.
func TestValidateShowsNextFires(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: report
triggers:
  - cron: "0 8 * * 1-5 *"
  - cron: "0 8 * * *"
    timezone: Europe/Berlin
  - every: 90s
  - cron: "0 0 30 2 *"
  - webhook: { path: /report }
steps:
  - id: a
    run: echo hi
`)
	// A Friday before the clocks go forward in Berlin.
	now := func() time.Time { return time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC) }
	r := routinesWith(t, cli.Deps{Now: now}, "", "validate", dir)
	if r.code != 0 {
		t.Fatalf("validate: %+v", r)
	}
	wantOut := dir + `/routine.yaml: valid (routine report, 1 step, 5 triggers)
triggers[0] cron "0 8 * * 1-5 *" in UTC, next fires:
  Fri 2026-03-27 12:08:00 UTC (UTC+00:00)
  Fri 2026-03-27 13:08:00 UTC (UTC+00:00)
  Fri 2026-03-27 14:08:00 UTC (UTC+00:00)
triggers[1] cron "0 8 * * *" in Europe/Berlin, next fires:
  Sat 2026-03-28 08:00:00 CET (UTC+01:00)
  Sun 2026-03-29 08:00:00 CEST (UTC+02:00)
  Mon 2026-03-30 08:00:00 CEST (UTC+02:00)
triggers[2] every 1m30s, next fires counted from now (a daemon counts from its start or the last firing):
  Fri 2026-03-27 12:01:30 UTC (UTC+00:00)
  Fri 2026-03-27 12:03:00 UTC (UTC+00:00)
  Fri 2026-03-27 12:04:30 UTC (UTC+00:00)
triggers[3] cron "0 0 30 2 *" in UTC never fires: no time matches it in the next five years
`
	if r.stdout != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	wantErr := dir + `/routine.yaml:3:11: warning: cron "0 8 * * 1-5 *": six fields are read as second minute hour day-of-month month day-of-week: second 0, minute 8, every hour, every day, months 1-5 (January–May); if you meant minute hour day-of-month month day-of-week, drop the sixth field: "0 8 * * 1-5"
    3 |   - cron: "0 8 * * 1-5 *"
      |           ^
`
	if r.stderr != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, wantErr)
	}

	r = routinesWith(t, cli.Deps{Now: now}, "", "validate", dir, "-o", "json")
	var out struct {
		Valid    bool `json:"valid"`
		Warnings []struct {
			Line    int    `json:"line"`
			Col     int    `json:"col"`
			Message string `json:"message"`
		} `json:"warnings"`
		NextFires []struct {
			Trigger  int      `json:"trigger"`
			Cron     string   `json:"cron"`
			Timezone string   `json:"timezone"`
			Every    string   `json:"every"`
			Next     []string `json:"next"`
		} `json:"next_fires"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || !out.Valid {
		t.Fatalf("validate -o json: %v %+v", err, r)
	}
	if len(out.Warnings) != 1 || out.Warnings[0].Line != 3 || out.Warnings[0].Col != 11 {
		t.Errorf("warnings: %+v", out.Warnings)
	}
	if len(out.NextFires) != 4 {
		t.Fatalf("next_fires: %+v", out.NextFires)
	}
	if f := out.NextFires[1]; f.Trigger != 1 || f.Timezone != "Europe/Berlin" || len(f.Next) != 3 || f.Next[1] != "2026-03-29T08:00:00+02:00" {
		t.Errorf("next_fires[1]: %+v", f)
	}
	if f := out.NextFires[2]; f.Every != "1m30s" || len(f.Next) != 3 || f.Next[0] != "2026-03-27T12:01:30Z" {
		t.Errorf("next_fires[2]: %+v", f)
	}
	if f := out.NextFires[3]; f.Next == nil || len(f.Next) != 0 {
		t.Errorf("next_fires[3] of a cron that never fires: %+v", f)
	}
}
