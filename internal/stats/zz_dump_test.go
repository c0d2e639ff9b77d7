package stats_test

import (
	"os"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stats"
	"github.com/routines-dev/routines/internal/store"
)

func TestZZDump(t *testing.T) {
	ok, failed, dead := routine.StateSucceeded, routine.StateFailed, routine.StateDead
	day := 24 * time.Hour
	var sts []*store.Stats
	var changes []store.OutcomeChange
	for k, name := range []string{"support-triage", "nightly-export", "invoice-sync", "cpu-alert"} {
		s := &store.Stats{Routine: name, Totals: store.Aggregate{ByState: map[routine.State]int64{}}}
		for w := 0; w < 13; w++ {
			states := repeat(ok, 20+10*k+w)
			for e := 0; e < (w*k)%5; e++ {
				states = append(states, failed)
			}
			if w == 7 && k == 1 {
				states = append(states, dead, dead)
			}
			a := agg(since.Add(time.Duration(w)*7*day+time.Hour), time.Second, states...)
			s.Series = append(s.Series, a)
			for st, n := range a.ByState {
				s.Totals.ByState[st] += n
			}
			if (w*k)%5 > 0 {
				changes = append(changes, store.OutcomeChange{Routine: name, State: failed, FinishedAt: since.Add(time.Duration(w) * 7 * day)},
					store.OutcomeChange{Routine: name, State: ok, FinishedAt: since.Add(time.Duration(w)*7*day + time.Duration(k+1)*7*time.Minute)})
			}
		}
		sts = append(sts, s)
	}
	routines := []*routine.Routine{
		{Name: "support-triage", Tags: []string{"prod", "support"}, Value: &routine.Value{MinutesSavedPerRun: 6}},
		{Name: "nightly-export", Tags: []string{"prod"}, Value: &routine.Value{MinutesSavedPerRun: 30}},
		{Name: "invoice-sync", Tags: []string{"finance", "<b>x</b>"}, Value: &routine.Value{MinutesSavedPerRun: 4}},
		{Name: "cpu-alert", Tags: []string{"ops"}},
	}
	rep, err := stats.BuildReport(t.Context(), &fake{stats: sts, changes: changes}, routines, since, since.Add(91*day), since.Add(91*day))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create("/tmp/report.html")
	defer f.Close()
	stats.WriteHTML(f, rep)
}
