package daemon

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/trigger"
)

// Two servers fire every tick of a routine's schedules: each tick makes
// one run. The servers' every: 3s cadences are 1.5 s apart (they started
// apart), and one server fires each cron tick late, in the next second.
func TestTickOnceAcrossServers(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &routine.Routine{Name: "r", Triggers: []routine.Trigger{{Every: routine.Duration(3 * time.Second)}, {Cron: "* * * * * *"}}}
	catalog := scheduler.NewCatalog([]*routine.Routine{r})
	sink := tickOnce(catalog, Sink(catalog, scheduler.NewQueue(st, nil, nil)))
	fire := func(i int, kind string, scheduled, at time.Time) {
		if err := sink(t.Context(), trigger.Fire{Routine: "r", Trigger: i, Kind: kind, At: at, Scheduled: scheduled}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Unix(1_800_000_000, 0)
	for k := range 10 {
		period := start.Add(time.Duration(3*k) * time.Second)
		for _, phase := range []time.Duration{500 * time.Millisecond, 2 * time.Second} {
			fire(0, "every", period.Add(phase), period.Add(phase))
		}
	}
	for s := range 5 {
		tick := start.Add(time.Duration(s) * time.Second)
		fire(1, "cron", tick, tick.Add(10*time.Millisecond))
		fire(1, "cron", tick, tick.Add(1200*time.Millisecond))
	}
	runs, err := st.RunList(t.Context(), &store.RunListParams{Routine: "r", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, run := range runs {
		count[run.Trigger.Kind]++
	}
	if count["every"] != 10 || count["cron"] != 5 {
		t.Errorf("runs by trigger: %v, want 10 of every (one a period) and 5 of cron (one a tick)", count)
	}
}
