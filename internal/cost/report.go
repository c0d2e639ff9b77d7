package cost

import (
	"fmt"
	"maps"
	"slices"
	"time"

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

// Row is what the runs of a routine, or of the routines of a tag, used in
// a report's range, and its price.
type Row struct {
	Name          string                    `json:"name"`
	Runs          int64                     `json:"runs"`
	CPUSeconds    float64                   `json:"cpu_seconds"`
	GBSeconds     float64                   `json:"gb_seconds"`
	BytesSent     int64                     `json:"bytes_sent"`
	BytesReceived int64                     `json:"bytes_received"`
	Tokens        map[string]routine.Tokens `json:"tokens"`
	Cost          Amount                    `json:"cost"`
}

// Report is the costs of the runs that ended in [Since, Until), by
// routine or by tag, with their total and the budgets' status.
type Report struct {
	By       string    `json:"by"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Currency string    `json:"currency"`
	Rows     []Row     `json:"rows"`
	// Total sums the routines: a routine with two tags counts once here,
	// and in both tags' rows.
	Total Row `json:"total"`
	// Unpriced lists the models used whose tokens have no price.
	Unpriced []string       `json:"unpriced,omitempty"`
	Budgets  []BudgetStatus `json:"budgets"`
}

// Tags says which tags the runs of a routine count toward: the routine's
// current tags, so that retagging a routine moves its spend.
type Tags func(routine string) []string

// NewReport prices stats (as Stats returned them for [since, until)) and
// groups them by (ByRoutine or ByTag, through tags). Budgets is left for
// the caller.
func NewReport(stats []*store.Stats, by string, tags Tags, prices *Prices, since, until time.Time) (*Report, error) {
	if by != ByRoutine && by != ByTag {
		return nil, fmt.Errorf("by %q: want %s or %s", by, ByRoutine, ByTag)
	}
	rep := &Report{By: by, Since: since, Until: until, Currency: prices.Currency, Rows: []Row{}, Budgets: []BudgetStatus{}}
	rep.Total.Name = "total"
	rows := map[string]*Row{}
	var used routine.Usage
	for _, s := range stats {
		keys := []string{s.Routine}
		if by == ByTag {
			keys = tagsOf(tags, s.Routine)
		}
		for _, k := range keys {
			if rows[k] == nil {
				rows[k] = &Row{Name: k}
			}
			rows[k].add(&s.Totals)
		}
		rep.Total.add(&s.Totals)
		used.Add(s.Totals.Usage)
	}
	for _, k := range slices.Sorted(maps.Keys(rows)) {
		r := rows[k]
		r.price(prices)
		rep.Rows = append(rep.Rows, *r)
	}
	rep.Total.price(prices)
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

func (r *Row) add(a *store.Aggregate) {
	for _, n := range a.ByState {
		r.Runs += n
	}
	r.CPUSeconds += a.CPUSeconds
	u := r.usage()
	u.Add(a.Usage)
	r.GBSeconds, r.BytesSent, r.BytesReceived, r.Tokens = u.GBSeconds, u.BytesSent, u.BytesReceived, u.Tokens
}

func (r *Row) usage() routine.Usage {
	return routine.Usage{GBSeconds: r.GBSeconds, BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, Tokens: r.Tokens}
}

func (r *Row) price(p *Prices) {
	if r.Tokens == nil {
		r.Tokens = map[string]routine.Tokens{}
	}
	r.Cost = p.Price(r.CPUSeconds, r.usage())
}
