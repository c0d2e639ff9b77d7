package cost

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// What a report groups by.
const (
	ByRoutine = "routine"
	ByTag     = "tag"
)

// Untagged is the tag row of the routines without tags.
const Untagged = "(untagged)"

// Tags says which tags the runs of a routine count toward: the routine's
// current tags, so that retagging a routine moves its spend.
type Tags func(routine string) []string

// NewReport prices stats (as Stats returned them for [since, until)) and
// groups them by (ByRoutine or ByTag, through tags). Budgets is left for
// the caller.
func NewReport(stats []*store.Stats, by string, tags Tags, prices *Prices, since, until time.Time) (*api.CostReport, error) {
	if by != ByRoutine && by != ByTag {
		return nil, fmt.Errorf("by %q: want %s or %s", by, ByRoutine, ByTag)
	}
	rep := &api.CostReport{By: by, Since: since, Until: until, Currency: prices.Currency, Rows: []api.CostRow{}, Budgets: []api.BudgetStatus{}}
	rep.Total.Name = "total"
	rows := map[string]*api.CostRow{}
	var used routine.Usage
	for _, s := range stats {
		keys := []string{s.Routine}
		if by == ByTag {
			keys = tagsOf(tags, s.Routine)
		}
		for _, k := range keys {
			if rows[k] == nil {
				rows[k] = &api.CostRow{Name: k}
			}
			addAggregate(rows[k], &s.Totals)
		}
		addAggregate(&rep.Total, &s.Totals)
		used.Add(s.Totals.Usage)
	}
	for _, k := range slices.Sorted(maps.Keys(rows)) {
		r := rows[k]
		price(r, prices)
		rep.Rows = append(rep.Rows, *r)
	}
	price(&rep.Total, prices)
	rep.Unpriced = prices.Unpriced(used)
	return rep, nil
}

// tagsOf returns the tags a routine's runs count toward; Untagged when it
// has none.
func tagsOf(tags Tags, name string) []string {
	var ts []string
	if tags != nil {
		ts = tags(name)
	}
	if len(ts) == 0 {
		return []string{Untagged}
	}
	return ts
}

// addAggregate adds what the runs of a routine used to r.
func addAggregate(r *api.CostRow, a *store.Aggregate) {
	for _, n := range a.ByState {
		r.Runs += n
	}
	r.CPUSeconds += a.CPUSeconds
	u := rowUsage(r)
	u.Add(a.Usage)
	r.GBSeconds, r.BytesSent, r.BytesReceived, r.Tokens = u.GBSeconds, u.BytesSent, u.BytesReceived, u.Tokens
}

func rowUsage(r *api.CostRow) routine.Usage {
	return routine.Usage{GBSeconds: r.GBSeconds, BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, Tokens: r.Tokens}
}

// price prices r; its Tokens become {} rather than null in JSON.
func price(r *api.CostRow, p *Prices) {
	if r.Tokens == nil {
		r.Tokens = map[string]routine.Tokens{}
	}
	r.Cost = p.Price(r.CPUSeconds, rowUsage(r))
}

// Query selects a report: the runs that ended in [Since, Until), grouped
// By, priced at Prices.
type Query struct {
	By    string
	Since time.Time
	Until time.Time
	// Routines are the routines whose runs count; nil: every routine's.
	Routines []string
	Tags     Tags
	Prices   *Prices
}

// Read reads the rollups of q's range from st and prices them. A store
// without rollups answers an error wrapping store.ErrUnsupported.
func Read(ctx context.Context, st store.StatsReader, q Query) (*api.CostReport, error) {
	if q.By != ByRoutine && q.By != ByTag {
		return nil, fmt.Errorf("by %q: want %s or %s", q.By, ByRoutine, ByTag)
	}
	stats, err := st.Stats(ctx, &store.StatsParams{Routines: q.Routines, Since: q.Since, Until: q.Until})
	if err != nil {
		return nil, fmt.Errorf("read the costs: %w", err)
	}
	return NewReport(stats, q.By, q.Tags, q.Prices, q.Since, q.Until)
}

// TagsOf returns the Tags of routines, as they are now.
func TagsOf(routines []*routine.Routine) Tags {
	m := make(map[string][]string, len(routines))
	for _, r := range routines {
		m[r.Name] = r.Tags
	}
	return func(name string) []string { return m[name] }
}
