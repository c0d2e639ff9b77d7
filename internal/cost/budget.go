package cost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// What a budget does past 100 %.
const (
	OnExceedStop = "stop" // new runs of the tag's routines are refused
	OnExceedWarn = "warn" // it warns, as at 80 %
)

// WarnAt is the share of a budget spent at which it warns.
const WarnAt = 0.8

// Budget is a monthly budget of the routines that carry a tag.
type Budget struct {
	Tag      string  `yaml:"tag" json:"tag"`
	Amount   float64 `yaml:"amount" json:"amount"`
	OnExceed string  `yaml:"on_exceed" json:"on_exceed"` // stop or warn (the default)
}

// ParseBudget reads TAG=AMOUNT[,on_exceed=stop|warn].
func ParseBudget(s string) (Budget, error) {
	head, opt, hasOpt := strings.Cut(s, ",")
	tag, amount, ok := strings.Cut(head, "=")
	b := Budget{Tag: strings.TrimSpace(tag), OnExceed: OnExceedWarn}
	if !ok || b.Tag == "" {
		return b, fmt.Errorf("budget %q: want TAG=AMOUNT[,on_exceed=stop|warn], such as prod=100,on_exceed=stop", s)
	}
	var err error
	if b.Amount, err = ParseAmount(amount); err != nil {
		return b, fmt.Errorf("budget %q: %w", s, err)
	}
	if hasOpt {
		key, v, _ := strings.Cut(opt, "=")
		if strings.TrimSpace(key) != "on_exceed" {
			return b, fmt.Errorf("budget %q: unknown option %q: want on_exceed=stop or on_exceed=warn", s, key)
		}
		b.OnExceed = strings.TrimSpace(v)
	}
	return b, b.Validate()
}

// Validate checks the tag, the amount and on_exceed.
func (b *Budget) Validate() error {
	if b.OnExceed == "" {
		b.OnExceed = OnExceedWarn
	}
	switch {
	case b.Tag == "":
		return fmt.Errorf("a budget without a tag: give tag: NAME")
	case b.Amount <= 0:
		return fmt.Errorf("budget of tag %s: amount %v: want more than 0", b.Tag, b.Amount)
	case b.OnExceed != OnExceedStop && b.OnExceed != OnExceedWarn:
		return fmt.Errorf("budget of tag %s: on_exceed %q: want stop or warn", b.Tag, b.OnExceed)
	}
	return nil
}

// Budget states.
const (
	StateOK       = "ok"
	StateWarning  = "warning"  // at least WarnAt spent
	StateExceeded = "exceeded" // all spent
)

// ExceededError refuses a run of a routine whose tag's budget is spent,
// under on_exceed: stop. The API answers it with 429.
type ExceededError struct {
	Routine string
	Status  api.BudgetStatus
}

func (e *ExceededError) Error() string {
	s := e.Status
	return fmt.Sprintf("budget of tag %s is spent: %.2f of %.2f %s this month (since %s); new runs of %s, tagged %s, are refused until %s: raise it with --budget %s=AMOUNT,on_exceed=stop on the server (or on_exceed=warn to only warn)",
		s.Tag, s.Spent, s.Amount, s.Currency, s.Month.Format("2006-01-02"), e.Routine, s.Tag, s.Month.AddDate(0, 1, 0).Format("2006-01-02"), s.Tag)
}

// BudgetsConfig is what Budgets are built from. Stats and Routines are
// required.
type BudgetsConfig struct {
	Budgets []Budget
	Prices  Prices
	Stats   store.StatsReader
	// Routines returns the routines the daemon serves: their current tags
	// say which budgets their runs count toward.
	Routines func() []*routine.Routine
	// Refresh is how often the spend is read again (5s when 0): often
	// enough to stop soon after a budget is spent, and never per run.
	Refresh time.Duration
	Clock   clock.Clock
	Logger  *slog.Logger
	// OnChange, when set, is called with a budget's status each time it
	// crosses into another state (ok, warning, exceeded) — the hook of a
	// metric or an alert.
	OnChange func(api.BudgetStatus)
	// Notify, when set, is a URL each such crossing is POSTed to as the
	// JSON of the api.BudgetStatus.
	Notify string
}

// Budgets keeps the status of the per-tag monthly budgets, read from the
// store's rollups every Refresh, and refuses the runs of a budget spent
// under on_exceed: stop (Admit). It is a service: Start, Stop.
type Budgets struct {
	cfg    BudgetsConfig
	client *http.Client

	mu     sync.RWMutex
	status []api.BudgetStatus
	// failing is set while the spend cannot be read.
	failing atomic.Bool

	stop chan struct{}
	done chan struct{}
}

// NewBudgets returns the budgets of cfg; nothing is read before Start.
func NewBudgets(cfg BudgetsConfig) *Budgets {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Budgets{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}}
}

// Start reads the budgets' status once, so that Admit judges from the
// first run, then keeps it fresh until Stop. A failing read is logged:
// the budgets keep their last status.
func (b *Budgets) Start(ctx context.Context) error {
	b.Refresh(ctx)
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	go b.loop()
	return nil
}

// Stop ends the refreshes.
func (b *Budgets) Stop(context.Context) error {
	if b.stop != nil {
		close(b.stop)
		<-b.done
	}
	return nil
}

func (b *Budgets) loop() {
	defer close(b.done)
	t := time.NewTicker(b.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Refresh)
			b.Refresh(ctx)
			cancel()
		}
	}
}

// Status returns the status of every budget, by tag: what the dashboard's
// banner and GET /v1/costs show.
func (b *Budgets) Status() []api.BudgetStatus {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.Clone(b.status)
}

// Admit returns an *ExceededError when a tag of r has a budget spent
// under on_exceed: stop; nil otherwise. It reads the cached status only.
func (b *Budgets) Admit(r *routine.Routine) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.status {
		if s.Refusing && slices.Contains(r.Tags, s.Tag) {
			return &ExceededError{Routine: r.Name, Status: s}
		}
	}
	return nil
}

// Refresh reads the spend of the current month again and acts on the
// budgets that crossed into another state: a log line (warning at 80 %,
// error at 100 %), OnChange and Notify, once per crossing.
func (b *Budgets) Refresh(ctx context.Context) {
	now := b.cfg.Clock.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rep, err := Read(ctx, b.cfg.Stats, Query{By: ByTag, Since: month, Until: now.Add(time.Second), Tags: TagsOf(b.cfg.Routines()), Prices: &b.cfg.Prices})
	if err != nil {
		if !b.failing.Swap(true) { // once per outage, not every Refresh
			b.cfg.Logger.Error("budgets: the month's spend is not known; they keep their last status", "err", err)
		}
		return
	}
	if b.failing.Swap(false) {
		b.cfg.Logger.Info("budgets: the month's spend is known again")
	}
	spent := map[string]float64{}
	for _, row := range rep.Rows {
		spent[row.Name] = row.Cost.Total
	}
	next := make([]api.BudgetStatus, len(b.cfg.Budgets))
	for i, bu := range b.cfg.Budgets {
		s := api.BudgetStatus{Tag: bu.Tag, Amount: bu.Amount, OnExceed: bu.OnExceed, Currency: b.cfg.Prices.Currency, Month: month, Spent: spent[bu.Tag], State: StateOK}
		s.Percent = 100 * s.Spent / s.Amount
		switch {
		case s.Spent >= s.Amount:
			s.State = StateExceeded
			s.Refusing = s.OnExceed == OnExceedStop
		case s.Spent >= WarnAt*s.Amount:
			s.State = StateWarning
		}
		next[i] = s
	}
	b.mu.Lock()
	prev := b.status
	b.status = next
	b.mu.Unlock()
	for i, s := range next {
		was := StateOK
		if i < len(prev) && prev[i].Month.Equal(s.Month) {
			was = prev[i].State
		}
		if s.State != was {
			b.crossed(s)
		}
	}
}

// crossed tells of a budget that moved into another state.
func (b *Budgets) crossed(s api.BudgetStatus) {
	attrs := []any{"tag", s.Tag, "spent", fmt.Sprintf("%.2f", s.Spent), "budget", fmt.Sprintf("%.2f", s.Amount), "currency", s.Currency, "percent", fmt.Sprintf("%.0f", s.Percent), "on_exceed", s.OnExceed}
	switch s.State {
	case StateExceeded:
		msg := "budget spent: runs of its routines go on (on_exceed: warn)"
		if s.Refusing {
			msg = "budget spent: new runs of its routines are refused until the month ends (on_exceed: stop)"
		}
		b.cfg.Logger.Error(msg, attrs...)
	case StateWarning:
		b.cfg.Logger.Warn(fmt.Sprintf("budget %.0f %% spent", WarnAt*100), attrs...)
	default:
		b.cfg.Logger.Info("budget back under its warning", attrs...)
	}
	if b.cfg.OnChange != nil {
		b.cfg.OnChange(s)
	}
	if b.cfg.Notify != "" {
		go b.notify(s)
	}
}

// notify POSTs s to the Notify URL; a failure is logged, not retried.
func (b *Budgets) notify(s api.BudgetStatus) {
	body, _ := json.Marshal(s)
	resp, err := b.client.Post(b.cfg.Notify, "application/json", bytes.NewReader(body))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // without the URL, which may hold a token
	}
	if err != nil {
		b.cfg.Logger.Warn("budgets: notify", "tag", s.Tag, "err", err)
	}
}
