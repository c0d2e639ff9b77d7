package api

import (
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// CostReport answers GET /v1/costs (and is `routines costs -o json`):
// what the runs that ended in [Since, Until) used and cost, by routine or
// by tag, with the total and the budgets of the current month.
type CostReport struct {
	By       string    `json:"by"` // routine or tag
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Currency string    `json:"currency"`
	Rows     []CostRow `json:"rows"`
	// Total sums the routines: a routine with two tags counts once here,
	// and in both tags' rows.
	Total CostRow `json:"total"`
	// Unpriced lists the models used whose tokens have no price.
	Unpriced []string       `json:"unpriced,omitempty"`
	Budgets  []BudgetStatus `json:"budgets"`
}

// CostRow is what the runs of a routine, or of the routines of a tag,
// used, and its price.
type CostRow struct {
	Name          string                    `json:"name"`
	Runs          int64                     `json:"runs"`
	CPUSeconds    float64                   `json:"cpu_seconds"`
	GBSeconds     float64                   `json:"gb_seconds"`
	BytesSent     int64                     `json:"bytes_sent"`
	BytesReceived int64                     `json:"bytes_received"`
	Tokens        map[string]routine.Tokens `json:"tokens"`
	Cost          CostAmount                `json:"cost"`
}

// CostAmount is a price, by what it prices.
type CostAmount struct {
	CPU      float64 `json:"cpu"`
	Memory   float64 `json:"memory"`
	Transfer float64 `json:"transfer"`
	Tokens   float64 `json:"tokens"`
	Total    float64 `json:"total"`
}

// BudgetStatus is how much of a tag's monthly budget the current
// calendar month (UTC) has spent.
type BudgetStatus struct {
	Tag      string  `json:"tag"`
	Amount   float64 `json:"amount"`
	OnExceed string  `json:"on_exceed"` // stop or warn
	Currency string  `json:"currency"`
	// Month is the first instant of the month.
	Month time.Time `json:"month"`
	Spent float64   `json:"spent"`
	// Percent is Spent of Amount, in percent.
	Percent float64 `json:"percent"`
	// State is ok, warning (80 % spent) or exceeded (100 %).
	State string `json:"state"`
	// Refusing says that new runs of the tag's routines are refused.
	Refusing bool `json:"refusing"`
}

// BudgetRefusal is the body of the 429 that refuses a run because a
// budget of its routine's tag is spent under on_exceed: stop.
type BudgetRefusal struct {
	Error  string       `json:"error"`
	Budget BudgetStatus `json:"budget"`
}
