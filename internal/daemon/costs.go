package daemon

import (
	"log/slog"

	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

// costs returns the prices of cfg (zero rates in USD when nil) and, when
// it has budgets, the service that keeps them, which the queue asks
// before it creates a run: the one place every run of this daemon's
// API and triggers goes through.
// The metrics, m, report how the budgets stand.
func costs(cfg *cost.Config, st store.Store, catalog *scheduler.Catalog, queue *scheduler.Queue, m *metrics.Metrics, logger *slog.Logger) (*cost.Prices, *cost.Budgets) {
	if cfg == nil {
		return &cost.Prices{Currency: cost.DefaultCurrency}, nil
	}
	if len(cfg.Budgets) == 0 {
		return &cfg.Prices, nil
	}
	budgets := cost.NewBudgets(cost.BudgetsConfig{
		Budgets: cfg.Budgets, Prices: cfg.Prices, Stats: st, Routines: catalog.All,
		Logger: logger, Notify: cfg.Notify,
	})
	queue.Admit(budgets.Admit)
	m.WatchBudgets(budgets.Status)
	return &cfg.Prices, budgets
}
