package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/routines-dev/routines/internal/api"
)

var (
	budgetSpentDesc = prometheus.NewDesc(namespace+"_budget_spent_ratio",
		"Share of each per-tag monthly budget spent so far (1 = all of it; 0.8 warns).", []string{"tag", "on_exceed"}, nil)
	budgetRefusingDesc = prometheus.NewDesc(namespace+"_budget_refusing",
		"1 while a spent budget under on_exceed: stop refuses the new runs of its tag's routines.", []string{"tag"}, nil)
)

// WatchBudgets reports, at scrape time, how the per-tag budgets stand:
// status is *cost.Budgets' Status, which keeps them fresh itself.
func (m *Metrics) WatchBudgets(status func() []api.BudgetStatus) {
	m.reg.MustRegister(budgetCollector(status))
}

type budgetCollector func() []api.BudgetStatus

func (c budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetSpentDesc
	ch <- budgetRefusingDesc
}

func (c budgetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c() {
		var ratio, refusing float64
		if b.Amount > 0 {
			ratio = b.Spent / b.Amount
		}
		if b.Refusing {
			refusing = 1
		}
		ch <- prometheus.MustNewConstMetric(budgetSpentDesc, prometheus.GaugeValue, ratio, b.Tag, b.OnExceed)
		ch <- prometheus.MustNewConstMetric(budgetRefusingDesc, prometheus.GaugeValue, refusing, b.Tag)
	}
}
