package storetest

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// exercisePrune checks retention on a driver that prunes (store.Pruner);
// the others skip it.
func exercisePrune(t *testing.T, open func(t *testing.T) store.Store) {
	pruner := func(t *testing.T) (*testBundle, store.Pruner) {
		t.Helper()
		b := setup(t, open)
		p, ok := b.s.(store.Pruner)
		if !ok {
			t.Skip("the driver does not prune")
		}
		return b, p
	}
	now := hour0.Add(48 * time.Hour)
	old, recent := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	cutoff := now.Add(-24 * time.Hour)

	t.Run("Runs", func(t *testing.T) {
		t.Parallel()
		b, pr := pruner(t)
		endAt := func(state routine.State, at time.Time, edit func(p *store.RunCreateParams)) *routine.Run {
			return b.endRun(t, state, at, edit)
		}
		tagged := endAt(routine.StateSucceeded, old, func(p *store.RunCreateParams) { p.Tags = []string{"prod"} })
		b.addLogs(t, tagged.ID, 3)
		if err := b.s.StepSave(b.ctx, &routine.StepRun{RunID: tagged.ID, Phase: routine.PhaseMain, ID: "a",
			Kind: "run", State: routine.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
		failed := endAt(routine.StateFailed, old, nil)
		cancelled := endAt(routine.StateCancelled, old, nil)
		dead := endAt(routine.StateDead, old, nil)
		replayedDead := endAt(routine.StateDead, old, nil)
		endAt(routine.StateSucceeded, recent, func(p *store.RunCreateParams) { p.ReplayOf = replayedDead.ID })
		deduping := endAt(routine.StateSucceeded, old, func(p *store.RunCreateParams) {
			p.DedupeKey, p.DedupeUntil = "k", ptr(now.Add(time.Minute))
		})
		young := endAt(routine.StateSucceeded, recent, nil)
		queued := b.createRun(t, func(p *store.RunCreateParams) { p.QueuedAt = old })
		running := b.createRun(t, func(p *store.RunCreateParams) {
			p.QueuedAt, p.State, p.Worker, p.Lease = old, routine.StateRunning, "w", time.Minute
		})
		statsBefore := b.stats(t, store.StatsParams{Since: old.Add(-time.Hour), Until: now})

		p := &store.PruneParams{Kind: store.PruneRuns, Before: cutoff, Now: now, Limit: 2}
		if n, err := pr.PruneCount(b.ctx, p); err != nil || n != 4 {
			t.Fatalf("PruneCount = %d, %v; want 4", n, err)
		}
		var gone []string
		for {
			res, err := pr.Prune(b.ctx, p)
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			if res.Rows != int64(len(res.RunIDs)) || res.Rows > 2 {
				t.Fatalf("Prune = %+v: want as many ids as rows, at most the limit", res)
			}
			gone = append(gone, res.RunIDs...)
			if !res.More {
				break
			}
		}
		slices.Sort(gone)
		want := []string{tagged.ID, failed.ID, cancelled.ID, replayedDead.ID}
		slices.Sort(want)
		if !slices.Equal(gone, want) {
			t.Errorf("pruned %v, want %v", gone, want)
		}
		for _, id := range want {
			if _, err := b.s.RunGet(b.ctx, id); !errors.Is(err, routine.ErrNotFound) {
				t.Errorf("RunGet(%s) of a pruned run: %v, want ErrNotFound", id, err)
			}
		}
		for _, r := range []*routine.Run{dead, deduping, young, queued, running} {
			b.getRun(t, r.ID)
		}
		if steps, err := b.s.StepList(b.ctx, tagged.ID); err != nil || len(steps) != 0 {
			t.Errorf("steps of a pruned run: %d, %v", len(steps), err)
		}
		if lines, err := b.s.LogList(b.ctx, &store.LogListParams{RunID: tagged.ID}); err != nil || len(lines) != 0 {
			t.Errorf("log lines of a pruned run: %d, %v", len(lines), err)
		}
		if runs, err := b.s.RunList(b.ctx, &store.RunListParams{Tag: "prod"}); err != nil || len(runs) != 0 {
			t.Errorf("runs tagged prod after pruning: %d, %v", len(runs), err)
		}
		// The rollups still count the pruned runs.
		statsAfter := b.stats(t, store.StatsParams{Since: old.Add(-time.Hour), Until: now})
		if got, want := statsAfter["r"].Totals.ByState, statsBefore["r"].Totals.ByState; !maps.Equal(got, want) {
			t.Errorf("stats after pruning %v, before %v", got, want)
		}
		if n, err := pr.PruneCount(b.ctx, p); err != nil || n != 0 {
			t.Errorf("PruneCount after pruning = %d, %v; want 0", n, err)
		}

		// Explicitly, the dead letters go too, replayed or not.
		dl := &store.PruneParams{Kind: store.PruneDeadLetters, Now: now}
		if n, err := pr.PruneCount(b.ctx, dl); err != nil || n != 1 {
			t.Fatalf("PruneCount(dead letters) = %d, %v; want 1", n, err)
		}
		if res, err := pr.Prune(b.ctx, dl); err != nil || len(res.RunIDs) != 1 || res.RunIDs[0] != dead.ID {
			t.Fatalf("Prune(dead letters) = %+v, %v; want %s", res, err, dead.ID)
		}
	})

	t.Run("OverCount", func(t *testing.T) {
		t.Parallel()
		b, pr := pruner(t)
		var runs []*routine.Run
		for i := range 5 {
			runs = append(runs, b.endRun(t, routine.StateSucceeded, recent.Add(time.Duration(i)*time.Second), nil))
		}
		for i := range 2 {
			b.endRun(t, routine.StateSucceeded, recent, func(p *store.RunCreateParams) { p.Routine = "other"; _ = i })
		}
		// The oldest run is still running: it counts, and stays.
		running := b.createRun(t, func(p *store.RunCreateParams) {
			p.QueuedAt, p.State, p.Worker, p.Lease = old, routine.StateRunning, "w", time.Minute
		})
		p := &store.PruneParams{Kind: store.PruneRunsOverCount, Keep: 2, Now: now}
		if n, err := pr.PruneCount(b.ctx, p); err != nil || n != 3 {
			t.Fatalf("PruneCount = %d, %v; want 3", n, err)
		}
		res, err := pr.Prune(b.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{runs[0].ID, runs[1].ID, runs[2].ID}
		got := slices.Clone(res.RunIDs)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || res.More {
			t.Errorf("pruned %v (more %v), want %v", got, res.More, want)
		}
		b.getRun(t, running.ID)
		if n := b.countRuns(t, "other"); n != 2 {
			t.Errorf("routine other has %d runs, want its 2", n)
		}
	})

	t.Run("Logs", func(t *testing.T) {
		t.Parallel()
		b, pr := pruner(t)
		var olds []*routine.Run
		for range 3 {
			r := b.endRun(t, routine.StateSucceeded, old, nil)
			b.addLogs(t, r.ID, 4)
			olds = append(olds, r)
		}
		dead := b.endRun(t, routine.StateDead, old, nil)
		b.addLogs(t, dead.ID, 2)
		young := b.endRun(t, routine.StateSucceeded, recent, nil)
		b.addLogs(t, young.ID, 2)
		running := b.createRun(t, func(p *store.RunCreateParams) {
			p.QueuedAt, p.State, p.Worker, p.Lease = old, routine.StateRunning, "w", time.Minute
		})
		b.addLogs(t, running.ID, 2)

		p := &store.PruneParams{Kind: store.PruneLogs, Before: cutoff, Now: now, Limit: 5}
		if n, err := pr.PruneCount(b.ctx, p); err != nil || n != 12 {
			t.Fatalf("PruneCount = %d, %v; want 12", n, err)
		}
		var total int64
		for i := 0; ; i++ {
			res, err := pr.Prune(b.ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows > 5 {
				t.Fatalf("a batch deleted %d lines, over its limit of 5", res.Rows)
			}
			total += res.Rows
			if !res.More {
				break
			}
			if i > 10 {
				t.Fatal("pruning logs does not end")
			}
		}
		if total != 12 {
			t.Errorf("pruned %d lines, want 12", total)
		}
		for _, r := range olds {
			b.getRun(t, r.ID)
			if lines, _ := b.s.LogList(b.ctx, &store.LogListParams{RunID: r.ID}); len(lines) != 0 {
				t.Errorf("run %s kept %d lines", r.ID, len(lines))
			}
		}
		for _, r := range []*routine.Run{dead, young, running} {
			if lines, _ := b.s.LogList(b.ctx, &store.LogListParams{RunID: r.ID}); len(lines) != 2 {
				t.Errorf("run %s (%s) has %d lines, want its 2", r.ID, r.State, len(lines))
			}
		}
		// A run that ends later, but ended before the cutoff, still has
		// its lines pruned (the pass goes on from where it stopped).
		late := b.endRun(t, routine.StateFailed, old.Add(time.Hour), nil)
		b.addLogs(t, late.ID, 3)
		if res, err := pr.Prune(b.ctx, p); err != nil || res.Rows != 3 {
			t.Errorf("Prune of the later run's lines = %+v, %v; want 3 rows", res, err)
		}
	})

	t.Run("AuditAndRollups", func(t *testing.T) {
		t.Parallel()
		b, pr := pruner(t)
		var recs []*store.AuditRecord
		for _, tm := range []time.Time{old, old, recent} {
			recs = append(recs, &store.AuditRecord{Time: tm, Action: store.AuditResolve, Secret: "S", Provider: "builtin", OK: true})
		}
		if err := b.s.AuditAppend(b.ctx, recs); err != nil {
			t.Fatal(err)
		}
		// The trail of actions goes by the same age.
		for _, tm := range []time.Time{old, old, recent} {
			a := &store.Action{Time: tm, Actor: "local", Role: store.RoleAdmin, Namespace: store.DefaultNamespace,
				Source: "127.0.0.1", Action: "invoke", Target: "r", Outcome: store.OutcomeOK}
			if err := b.s.ActionAppend(b.ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		p := &store.PruneParams{Kind: store.PruneAudit, Before: cutoff, Now: now}
		if res, err := pr.Prune(b.ctx, p); err != nil || res.Rows != 4 || res.More {
			t.Fatalf("Prune(audit) = %+v, %v; want 4 rows", res, err)
		}
		if left, err := b.s.AuditList(b.ctx, &store.AuditListParams{}); err != nil || len(left) != 1 {
			t.Errorf("audit left: %d, %v; want 1", len(left), err)
		}
		if left, err := b.s.ActionList(b.ctx, &store.ActionListParams{}); err != nil || len(left) != 1 || !left[0].Time.Equal(stored(recent)) {
			t.Errorf("actions left: %+v, %v; want the recent one", left, err)
		}

		// Two runs ended in the same minute, ten days ago: a minute row
		// and an hour row. Pruning the minutes keeps the hour.
		b.endRun(t, routine.StateSucceeded, old, nil)
		b.endRun(t, routine.StateFailed, old, nil)
		hours := b.stats(t, store.StatsParams{Since: old.Truncate(time.Hour), Until: old.Truncate(time.Hour).Add(time.Hour)})
		res, err := pr.Prune(b.ctx, &store.PruneParams{Kind: store.PruneRollupMinutes, Before: cutoff, Now: now})
		if err != nil || res.Rows < 1 {
			t.Fatalf("Prune(minutes) = %+v, %v; want a row at least", res, err)
		}
		if got := b.stats(t, store.StatsParams{Since: old.Truncate(time.Minute), Until: old.Truncate(time.Minute).Add(time.Minute)}); len(got) != 0 {
			t.Errorf("minute stats after pruning the minutes: %v", got)
		}
		after := b.stats(t, store.StatsParams{Since: old.Truncate(time.Hour), Until: old.Truncate(time.Hour).Add(time.Hour)})
		if !maps.Equal(after["r"].Totals.ByState, hours["r"].Totals.ByState) {
			t.Errorf("hour stats after pruning the minutes: %v, before %v", after["r"].Totals.ByState, hours["r"].Totals.ByState)
		}
		if _, err := pr.Prune(b.ctx, &store.PruneParams{Kind: store.PruneRollupHours, Before: cutoff, Now: now}); err != nil {
			t.Fatal(err)
		}
		if got := b.stats(t, store.StatsParams{Since: old.Truncate(time.Hour), Until: old.Truncate(time.Hour).Add(time.Hour)}); len(got) != 0 {
			t.Errorf("hour stats after pruning the hours: %v", got)
		}
	})
}

// endRun creates a run of routine "r" (after edit) that ended in state
// at at, having started a second before.
func (b *testBundle) endRun(t *testing.T, state routine.State, at time.Time, edit func(p *store.RunCreateParams)) *routine.Run {
	t.Helper()
	run := b.createRun(t, func(p *store.RunCreateParams) {
		p.QueuedAt = at.Add(-2 * time.Second)
		if edit != nil {
			edit(p)
		}
	})
	run.State, run.StartedAt, run.FinishedAt = state, ptr(at.Add(-time.Second)), ptr(at)
	if err := b.s.RunUpdate(b.ctx, run); err != nil {
		t.Fatalf("RunUpdate: %v", err)
	}
	return run
}

// addLogs appends n lines to a run.
func (b *testBundle) addLogs(t *testing.T, runID string, n int) {
	t.Helper()
	var lines []routine.LogLine
	for i := range n {
		lines = append(lines, routine.LogLine{RunID: runID, Step: "a", Seq: int64(i + 1), Time: epoch,
			Stream: routine.StreamStdout, Text: "line"})
	}
	if err := b.s.LogAppend(b.ctx, lines); err != nil {
		t.Fatalf("LogAppend: %v", err)
	}
}

func (b *testBundle) countRuns(t *testing.T, name string) int {
	t.Helper()
	counts, err := b.s.RunCount(b.ctx, &store.RunCountParams{Routine: name})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
