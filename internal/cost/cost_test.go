package cost_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPrice(t *testing.T) {
	t.Parallel()
	p := &cost.Prices{
		Currency: "EUR", CPUSecond: 0.01, GBSecond: 0.5, GBTransferred: 2,
		Tokens: map[string]cost.TokenPrice{"claude-sonnet-4": {Input: 3, Output: 15}, "claude": {Input: 1, Output: 1}, "gpt-4o": {Input: 2.5, Output: 10}},
	}
	u := routine.Usage{
		GBSeconds: 4, BytesSent: 1 << 29, BytesReceived: 1 << 29,
		Tokens: map[string]routine.Tokens{
			"claude-sonnet-4-20250514": {Input: 1_000_000, Output: 100_000}, // the longest prefix: 3 + 1.5
			"gpt-4o":                   {Input: 200_000, Output: 0},         // exact: 0.5
			"llama":                    {Input: 5, Output: 5},               // unpriced
		},
	}
	a := p.Price(100, u)
	want := api.CostAmount{CPU: 1, Memory: 2, Transfer: 2, Tokens: 5, Total: 10}
	if !near(a.CPU, want.CPU) || !near(a.Memory, want.Memory) || !near(a.Transfer, want.Transfer) || !near(a.Tokens, want.Tokens) || !near(a.Total, want.Total) {
		t.Fatalf("Price = %+v, want %+v", a, want)
	}
	if got := p.Unpriced(u); len(got) != 1 || got[0] != "llama" {
		t.Fatalf("Unpriced = %v, want [llama]", got)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	model, tp, err := cost.ParseTokenPrice("claude-sonnet-4=3/15")
	if err != nil || model != "claude-sonnet-4" || tp != (cost.TokenPrice{Input: 3, Output: 15}) {
		t.Fatalf("ParseTokenPrice = %q %+v %v", model, tp, err)
	}
	b, err := cost.ParseBudget("prod=100,on_exceed=stop")
	if err != nil || b != (cost.Budget{Tag: "prod", Amount: 100, OnExceed: cost.OnExceedStop}) {
		t.Fatalf("ParseBudget = %+v %v", b, err)
	}
	if b, err := cost.ParseBudget("dev=5"); err != nil || b.OnExceed != cost.OnExceedWarn {
		t.Fatalf("ParseBudget without on_exceed = %+v %v, want warn", b, err)
	}
	for _, bad := range []string{"prod", "prod=-1", "prod=x", "=5", "prod=5,on_exceed=maybe", "prod=5,when=stop", "prod=0"} {
		if _, err := cost.ParseBudget(bad); err == nil {
			t.Errorf("ParseBudget(%q): no error", bad)
		}
	}
	for _, bad := range []string{"m", "m=3", "m=3/x", "=3/4", "m=-1/2"} {
		if _, _, err := cost.ParseTokenPrice(bad); err == nil {
			t.Errorf("ParseTokenPrice(%q): no error", bad)
		}
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "costs.yaml")
	os.WriteFile(good, []byte("prices:\n  currency: EUR\n  cpu_second: 0.5\n  tokens:\n    m: {input: 1, output: 2}\nbudgets:\n  - {tag: prod, amount: 10, on_exceed: stop}\n  - {tag: dev, amount: 1}\nnotify: http://127.0.0.1:1/x\n"), 0o600)
	c, err := cost.LoadFile(good)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Prices.Currency != "EUR" || c.Prices.CPUSecond != 0.5 || c.Prices.Tokens["m"].Output != 2 || len(c.Budgets) != 2 || c.Budgets[1].OnExceed != cost.OnExceedWarn {
		t.Fatalf("config = %+v", c)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("prices:\n  cpu_secnd: 1\n"), 0o600)
	if _, err := cost.LoadFile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2:") {
		t.Fatalf("LoadFile of an unknown key: %v, want it at %s:2:col", err, bad)
	}
	twice := &cost.Config{Budgets: []cost.Budget{{Tag: "a", Amount: 1}, {Tag: "a", Amount: 2}}}
	if err := twice.Validate(); err == nil || !strings.Contains(err.Error(), "two budgets") {
		t.Fatalf("two budgets of a tag: %v", err)
	}
}

// fakeStats answers Stats with the totals it holds, whatever the range;
// it records the ranges asked for.
type fakeStats struct {
	mu     sync.Mutex
	stats  []*store.Stats
	asked  []store.StatsParams
	broken error
}

func (f *fakeStats) Stats(_ context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, *p)
	return f.stats, f.broken
}

func (f *fakeStats) set(cpuSeconds ...float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = nil
	for i, c := range cpuSeconds {
		f.stats = append(f.stats, &store.Stats{Routine: []string{"a", "b", "c"}[i], Totals: store.Aggregate{ByState: map[routine.State]int64{routine.StateSucceeded: 1}, CPUSeconds: c}})
	}
}

func TestReportByTag(t *testing.T) {
	t.Parallel()
	f := &fakeStats{}
	f.set(10, 20, 5)
	tags := cost.TagsOf([]*routine.Routine{{Name: "a", Tags: []string{"prod"}}, {Name: "b", Tags: []string{"prod", "eu"}}})
	rep, err := cost.Read(context.Background(), f, cost.Query{By: cost.ByTag, Tags: tags, Prices: &cost.Prices{Currency: "USD", CPUSecond: 1}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range rep.Rows {
		got[r.Name] = r.Cost.Total
	}
	want := map[string]float64{"(untagged)": 5, "eu": 20, "prod": 30}
	if len(got) != len(want) || got["prod"] != 30 || got["eu"] != 20 || got[cost.Untagged] != 5 {
		t.Fatalf("rows = %v, want %v", got, want)
	}
	if rep.Total.Cost.Total != 35 || rep.Total.Runs != 3 {
		t.Fatalf("total = %+v, want 35 over 3 runs (b once)", rep.Total)
	}
}

// logged collects log records.
type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) Enabled(context.Context, slog.Level) bool { return true }
func (l *logged) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logged) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logged) WithGroup(string) slog.Handler      { return l }
func (l *logged) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	f := &fakeStats{}
	log := &logged{}
	notified := make(chan api.BudgetStatus, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s api.BudgetStatus
		json.NewDecoder(r.Body).Decode(&s)
		notified <- s
	}))
	defer hook.Close()
	var changes []string
	clk := clock.NewVirtual(time.Date(2026, 12, 17, 10, 0, 0, 0, time.UTC))
	prod := &routine.Routine{Name: "a", Tags: []string{"prod"}}
	dev := &routine.Routine{Name: "b", Tags: []string{"dev"}}
	b := cost.NewBudgets(cost.BudgetsConfig{
		Budgets: []cost.Budget{{Tag: "prod", Amount: 100, OnExceed: cost.OnExceedStop}, {Tag: "dev", Amount: 10, OnExceed: cost.OnExceedWarn}},
		Prices:  cost.Prices{Currency: "USD", CPUSecond: 1},
		Stats:   f, Routines: func() []*routine.Routine { return []*routine.Routine{prod, dev} },
		Clock: clk, Logger: slog.New(log), Notify: hook.URL,
		OnChange: func(s api.BudgetStatus) { changes = append(changes, s.Tag+":"+s.State) },
	})
	ctx := context.Background()

	f.set(79, 5)
	b.Refresh(ctx)
	if err := b.Admit(prod); err != nil || len(changes) != 0 {
		t.Fatalf("at 79 %%: Admit = %v, changes %v", err, changes)
	}
	f.mu.Lock()
	if p := f.asked[0]; !p.Since.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("read from %s, want the start of the month", p.Since)
	}
	f.mu.Unlock()

	f.set(80, 5)
	b.Refresh(ctx)
	b.Refresh(ctx) // no second crossing
	if err := b.Admit(prod); err != nil {
		t.Fatalf("at 80 %%: Admit = %v", err)
	}
	if s := <-notified; s.Tag != "prod" || s.State != cost.StateWarning {
		t.Fatalf("notified %+v, want prod warning", s)
	}

	f.set(100.5, 12)
	b.Refresh(ctx)
	err := b.Admit(prod)
	var spent *cost.ExceededError
	if !errors.As(err, &spent) || !spent.Status.Refusing {
		t.Fatalf("at 100 %%: Admit = %v, want an ExceededError", err)
	}
	for _, want := range []string{"budget of tag prod is spent: 100.50 of 100.00 USD", "since 2026-12-01", "until 2027-01-01", "--budget prod=AMOUNT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if err := b.Admit(dev); err != nil {
		t.Fatalf("dev (on_exceed warn) over its budget: Admit = %v, want nil", err)
	}
	if got := strings.Join(changes, " "); got != "prod:warning prod:exceeded dev:exceeded" {
		t.Fatalf("changes = %q", got)
	}
	lines := log.all()
	if strings.Count(lines, "WARN budget 80 % spent") != 1 || strings.Count(lines, "ERROR budget spent: new runs") != 1 || strings.Count(lines, "ERROR budget spent: runs of its routines go on") != 1 {
		t.Fatalf("log:\n%s", lines)
	}

	// A new month starts afresh.
	clk.Advance(15 * 24 * time.Hour)
	f.set(0, 0)
	b.Refresh(ctx)
	if err := b.Admit(prod); err != nil {
		t.Fatalf("in January: Admit = %v", err)
	}
	st := b.Status()
	if len(st) != 2 || st[0].State != cost.StateOK || !st[0].Month.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("status in January = %+v", st)
	}

	// A store that fails keeps the last status, logged once.
	f.mu.Lock()
	f.broken = errors.New("down")
	f.mu.Unlock()
	b.Refresh(ctx)
	b.Refresh(ctx)
	if n := strings.Count(log.all(), "spend is not known"); n != 1 {
		t.Fatalf("a failing store logged %d times, want once", n)
	}
	if got := b.Status(); len(got) != 2 {
		t.Fatal("status lost")
	}
}
