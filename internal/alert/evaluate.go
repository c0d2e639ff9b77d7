package alert

import (
	"context"
	"log/slog"
	"slices"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Evaluate computes every alert of every routine once, at the clock's
// now, and records the transitions it finds: ok → firing when the
// condition holds, firing → ok when it no longer does. It returns how
// many transitions this evaluator recorded (another evaluator may have
// recorded the same first: it then records nothing). What fails is
// logged; the next pass tries again.
func (e *Evaluator) Evaluate(ctx context.Context) int {
	now := e.clock.Now()
	// The routines with alerts, by window: one read of the rollups per
	// window for all of them.
	windows := map[routine.Duration][]string{}
	var withAlerts []*routine.Routine
	for _, r := range e.cfg.Routines.All() {
		if len(r.Alerts) == 0 {
			continue
		}
		withAlerts = append(withAlerts, r)
		for _, a := range r.Alerts {
			if !slices.Contains(windows[a.Over], r.Name) {
				windows[a.Over] = append(windows[a.Over], r.Name)
			}
		}
	}
	if len(withAlerts) == 0 {
		return 0
	}
	stats := map[routine.Duration]map[string]*store.Stats{}
	for over, names := range windows {
		list, err := e.cfg.Store.Stats(ctx, &store.StatsParams{Routines: names, Since: now.Add(-over.D()), Until: now})
		if err != nil {
			e.repeats.Log(e.log, slog.LevelWarn, "stats", "alerts: cannot read the runs' rollups; alerts are not evaluated until they can be: "+err.Error())
			return 0
		}
		byName := make(map[string]*store.Stats, len(list))
		for _, s := range list {
			byName[s.Routine] = s
		}
		stats[over] = byName
	}
	states, err := e.cfg.Store.AlertStates(ctx)
	if err != nil {
		e.repeats.Log(e.log, slog.LevelWarn, "stats", "alerts: cannot read their state; alerts are not evaluated until it can be read: "+err.Error())
		return 0
	}
	e.repeats.Recovered(e.log, "stats", "alerts: evaluated again")
	current := make(map[[2]string]*store.AlertState, len(states))
	for _, s := range states {
		current[[2]string{s.Routine, s.Alert}] = s
	}
	recorded := 0
	for _, r := range withAlerts {
		for i := range r.Alerts {
			a := &r.Alerts[i]
			if a.Condition.Metric == "" {
				continue // not validated: nothing to compare
			}
			var agg store.Aggregate
			if s := stats[a.Over][r.Name]; s != nil {
				agg = s.Totals
			}
			value, runs, ok := Measure(a.Condition.Metric, &agg)
			holds := ok && a.Condition.Holds(value)
			from, to := routine.AlertOK, routine.AlertFiring
			startedAt := now
			if st := current[[2]string{r.Name, a.Name}]; st != nil && st.State == routine.AlertFiring {
				from, to, startedAt = routine.AlertFiring, routine.AlertOK, st.Since
			}
			if holds == (from == routine.AlertFiring) {
				continue
			}
			ev := &routine.AlertRecord{
				When: a.When, Metric: a.Condition.Metric, Value: value, Threshold: a.Condition.Threshold,
				Runs: runs, Over: a.Over, At: now, StartedAt: startedAt, Deliveries: targets(&a.Notify),
			}
			rec, won, err := e.cfg.Store.AlertTransition(ctx, &store.AlertTransitionParams{Routine: r.Name, Alert: a.Name, From: from, To: to, Record: ev})
			switch {
			case err != nil:
				e.log.Log(ctx, store.LogLevel(err, slog.LevelWarn), "alerts: cannot record a transition; the next evaluation tries again", "routine", r.Name, "alert", a.Name, "err", err)
				continue
			case !won:
				continue // another evaluator recorded it
			}
			recorded++
			level, verb := slog.LevelWarn, "is firing"
			if to == routine.AlertOK {
				level, verb = slog.LevelInfo, "cleared"
			}
			e.log.Log(ctx, level, "alert "+verb, "routine", r.Name, "alert", a.Name, "when", a.When,
				"value", rec.ValueText(), "runs", runs, "over", a.Over.String(), "alert_id", rec.ID)
		}
	}
	return recorded
}

// targets are the deliveries a record of an alert that notifies n owes.
func targets(n *routine.AlertNotify) []routine.AlertDelivery {
	var ds []routine.AlertDelivery
	if n.Slack != "" {
		ds = append(ds, routine.AlertDelivery{Target: TargetSlack})
	}
	if n.Webhook != "" {
		ds = append(ds, routine.AlertDelivery{Target: TargetWebhook})
	}
	return ds
}

// Measure computes metric over the aggregate of a window's runs: its
// value in the metric's unit (seconds, a ratio, runs), the runs it is
// computed from, and whether it has a value. A latency or a rate of no
// runs has none, and then no condition on it holds; a count of no runs
// is 0.
func Measure(metric string, a *store.Aggregate) (value float64, runs int64, ok bool) {
	var ended int64
	for _, n := range a.ByState {
		ended += n
	}
	failures := a.ByState[routine.StateFailed] + a.ByState[routine.StateDead]
	quantile := func(h *store.Histogram, q float64) (float64, int64, bool) {
		n := h.Count()
		if q == 0 {
			return h.Mean().Seconds(), n, n > 0
		}
		return h.Quantile(q).Seconds(), n, n > 0
	}
	switch metric {
	case "p50_latency":
		return quantile(&a.Duration, 0.5)
	case "p95_latency":
		return quantile(&a.Duration, 0.95)
	case "p99_latency":
		return quantile(&a.Duration, 0.99)
	case "avg_latency":
		return quantile(&a.Duration, 0)
	case "queue_wait_p50":
		return quantile(&a.QueueWait, 0.5)
	case "queue_wait_p95":
		return quantile(&a.QueueWait, 0.95)
	case "error_rate":
		if ended == 0 {
			return 0, 0, false
		}
		return float64(failures) / float64(ended), ended, true
	case "runs":
		return float64(ended), ended, true
	case "failures":
		return float64(failures), ended, true
	case "dead_letters":
		return float64(a.ByState[routine.StateDead]), ended, true
	}
	return 0, 0, false
}
