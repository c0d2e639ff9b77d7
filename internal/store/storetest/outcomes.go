package storetest

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// exerciseOutcomes checks that RunOutcomeChanges returns each routine's
// first run of the range and the runs whose outcome differs from the one
// before them by end, whatever order they were queued in, and nothing
// outside the range, unfinished or cancelled.
func exerciseOutcomes(t *testing.T, open func(t *testing.T) store.Store) {
	b := setup(t, open)
	type end struct {
		routine string
		state   routine.State
		at      time.Duration // finished at epoch + at; 0: not finished
	}
	ends := []end{
		{"a", routine.StateFailed, -time.Second}, // before the range
		{"a", routine.StateSucceeded, 1 * time.Second},
		{"a", routine.StateSucceeded, 2 * time.Second},
		{"a", routine.StateFailed, 4 * time.Second},
		{"a", routine.StateCancelled, 5 * time.Second}, // neither way
		{"a", routine.StateDead, 6 * time.Second},
		{"a", routine.StateSucceeded, 9 * time.Second},
		{"a", routine.StateFailed, 11 * time.Second},
		{"a", routine.StateRunning, 0},
		{"a", routine.StateFailed, 20 * time.Second}, // at Until: outside
		{"b", routine.StateFailed, 3 * time.Second},
		{"b", routine.StateFailed, 7 * time.Second},
		{"c", routine.StateSucceeded, 8 * time.Second},
	}
	// Queued in the reverse order of their ends: the order is the end's.
	for i := len(ends) - 1; i >= 0; i-- {
		e := ends[i]
		run := b.createRun(t, func(p *store.RunCreateParams) {
			p.Routine, p.QueuedAt = e.routine, at(-time.Duration(i)*time.Minute)
		})
		if e.at == 0 {
			continue
		}
		run.State, run.StartedAt, run.FinishedAt = e.state, ptr(run.QueuedAt), ptr(at(e.at))
		if err := b.s.RunUpdate(b.ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	changes := func(routines ...string) []store.OutcomeChange {
		t.Helper()
		got, err := b.s.RunOutcomeChanges(b.ctx, &store.RunOutcomeChangesParams{Routines: routines, Since: at(0), Until: at(20 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := func(is ...int) []store.OutcomeChange {
		var out []store.OutcomeChange
		for _, i := range is {
			out = append(out, store.OutcomeChange{Routine: ends[i].routine, State: ends[i].state, FinishedAt: stored(at(ends[i].at))})
		}
		return out
	}
	check := func(got, want []store.OutcomeChange) {
		t.Helper()
		if show(got) != show(want) {
			t.Errorf("RunOutcomeChanges:\n got %s\nwant %s", show(got), show(want))
		}
	}
	check(changes(), want(1, 3, 6, 7, 10, 12))
	check(changes("b", "c"), want(10, 12))
	check(changes("none"), want())
}

// OutcomesAtScale measures RunOutcomeChanges over $ROUTINES_SCALE_RUNS
// runs (1000000 for the figure in docs/report.md) that generate writes
// to s: runs of 20 routines ending over the 90 days from since, one in
// 20 failed. It fails past a second and 20 µs a run. Skipped without the variable:
// generating the runs takes minutes.
func OutcomesAtScale(t *testing.T, s store.Store, generate func(n int, since time.Time) error) {
	n, _ := strconv.Atoi(os.Getenv("ROUTINES_SCALE_RUNS"))
	if n == 0 {
		t.Skip("set ROUTINES_SCALE_RUNS=1000000 to measure")
	}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	if err := generate(n, since); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs generated in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	changes, err := s.RunOutcomeChanges(t.Context(), &store.RunOutcomeChangesParams{Since: since, Until: since.Add(90 * 24 * time.Hour)})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RunOutcomeChanges over %d runs: %d changes in %v", n, len(changes), took.Round(time.Millisecond))
	// One run in 20 fails: about 2 × n/20 × 19/20 changes.
	if want := n / 10 * 19 / 20; len(changes) < want*8/10 || len(changes) > want*12/10 {
		t.Errorf("%d changes, want about %d", len(changes), want)
	}
	if limit := time.Second + time.Duration(n)*20*time.Microsecond; took > limit {
		t.Errorf("took %v, want under %v", took, limit)
	}
}
