package dashboard

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// usageRow is what a routine or a tag used over the range, priced when
// the daemon has rates.
type usageRow struct {
	Name string
	summary
	Tokens int64
	Cost   float64
	Priced bool // whether Cost is known
}

type costsData struct {
	statsView
	Priced   bool
	Currency string
	Routines []usageRow
	Tags     []usageRow
	Total    usageRow
	Budgets  []Budget
	// BudgetsProblem says why the budgets cannot be shown.
	BudgetsProblem string
	Chart          chart
}

// costs renders the costs page: CPU-seconds, GB-seconds and bytes per
// routine and per tag over the range, priced with the configured rates
// and set against the budgets when the daemon has them. A tag's usage is
// that of the routines that carry it now.
func (d *Dashboard) costs(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	win := rangeOf(r).at(now)
	data := costsData{statsView: statsView{Window: win, Ranges: ranges}, Priced: d.cfg.Costs != nil, Total: usageRow{Name: "Total"}}
	all, err := d.stats(r.Context(), win)
	if err != nil {
		data.Problem = storeError("statistics", err)
	}
	tags := map[string]*usageRow{}
	for _, st := range all {
		row := d.usage(st.Routine, &st.Totals)
		data.Routines = append(data.Routines, row)
		if rt, ok := d.cfg.Routines.Get(st.Routine); ok {
			for _, tag := range rt.Tags {
				if tags[tag] == nil {
					tags[tag] = &usageRow{Name: tag}
				}
				tags[tag].add(row)
			}
		}
		data.Total.add(row)
	}
	for _, tag := range slices.Sorted(maps.Keys(tags)) {
		data.Tags = append(data.Tags, *tags[tag])
	}
	total := merged(all)
	data.Chart = newChart("Resource use", "all routines", win, total, formatNumber, mCPU, mGBs)
	if d.cfg.Costs != nil {
		data.Currency = d.cfg.Costs.Currency()
		data.Budgets, err = d.cfg.Costs.Budgets(r.Context(), now)
		if err != nil {
			data.BudgetsProblem = "The budgets could not be read: " + err.Error()
		}
		if d.runScope(r.Context()) != nil {
			// The budgets of the caller's routines' tags only, as the API.
			data.Budgets = slices.DeleteFunc(data.Budgets, func(b Budget) bool { return tags[b.Tag] == nil })
		}
	}
	d.render(w, r, http.StatusOK, "costs", page{Title: "Costs", Nav: "costs", Range: win.Name, Data: data})
}

// usage is the row of what one aggregate used.
func (d *Dashboard) usage(name string, a *store.Aggregate) usageRow {
	row := usageRow{Name: name, summary: summarize(a), Priced: d.cfg.Costs != nil}
	for _, t := range a.Usage.Tokens {
		row.Tokens += t.Input + t.Output
	}
	if d.cfg.Costs != nil {
		row.Cost = d.cfg.Costs.Price(a.CPUSeconds, a.Usage)
	}
	return row
}

// add adds what row used.
func (u *usageRow) add(row usageRow) {
	u.Runs += row.Runs
	u.CPUSeconds += row.CPUSeconds
	u.GBSeconds += row.GBSeconds
	u.Usage.Add(row.Usage)
	u.Bytes += row.Bytes
	u.Tokens += row.Tokens
	u.Cost += row.Cost
	u.Priced = row.Priced
}

// Priced returns the costs of prices (zero rates in cost.DefaultCurrency
// when nil) and budgets (none when nil): the server's --price-* rates and
// per-tag budgets. With no rate and no budget it returns nil, and the
// costs page shows raw usage.
func Priced(prices *cost.Prices, budgets *cost.Budgets) Costs {
	if budgets == nil && (prices == nil || prices.CPUSecond == 0 && prices.GBSecond == 0 && prices.GBTransferred == 0 && len(prices.Tokens) == 0) {
		return nil
	}
	if prices == nil {
		prices = &cost.Prices{Currency: cost.DefaultCurrency}
	}
	return priced{prices: prices, budgets: budgets}
}

type priced struct {
	prices  *cost.Prices
	budgets *cost.Budgets
}

func (p priced) Currency() string { return cmp.Or(p.prices.Currency, cost.DefaultCurrency) }

func (p priced) Price(cpuSeconds float64, usage routine.Usage) float64 {
	return p.prices.Price(cpuSeconds, usage).Total
}

func (p priced) Budgets(context.Context, time.Time) ([]Budget, error) {
	if p.budgets == nil {
		return nil, nil
	}
	var out []Budget
	for _, s := range p.budgets.Status() {
		out = append(out, Budget{Tag: s.Tag, Limit: s.Amount, Spent: s.Spent, Period: "month", OnExceed: s.OnExceed})
	}
	return out, nil
}
