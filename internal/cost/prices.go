// Package cost prices what runs consumed — CPU-seconds, GB-seconds, bytes
// transferred and model tokens, as the engine meters them and the store's
// rollups sum them — under the rates a deployment configures, reports
// them by routine or tag, and keeps per-tag monthly budgets that warn at
// 80 % and, with on_exceed: stop, refuse new runs at 100 %. It reads the
// store's Stats only, never runs.
package cost

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
)

// Prices are the rates runs are priced at. Zero rates price nothing: a
// report then shows what was used, at no cost.
type Prices struct {
	// Currency labels the amounts ("USD"); no conversion happens.
	Currency string `yaml:"currency" json:"currency"`
	// CPUSecond is the price of a second of CPU (user + system).
	CPUSecond float64 `yaml:"cpu_second" json:"cpu_second"`
	// GBSecond is the price of a GB of peak memory held for a second.
	GBSecond float64 `yaml:"gb_second" json:"gb_second"`
	// GBTransferred is the price of a GB sent or received.
	GBTransferred float64 `yaml:"gb_transferred" json:"gb_transferred"`
	// Tokens are the prices of models' tokens, by model name or by a
	// prefix of it ("claude-sonnet-4" prices "claude-sonnet-4-20250514").
	Tokens map[string]TokenPrice `yaml:"tokens" json:"tokens,omitempty"`
}

// TokenPrice is the price of a million input and output tokens.
type TokenPrice struct {
	Input  float64 `yaml:"input" json:"input"`
	Output float64 `yaml:"output" json:"output"`
}

// DefaultCurrency labels amounts when no currency is configured.
const DefaultCurrency = "USD"

// Validate checks the currency label and that every rate is a number of
// at least 0.
func (p *Prices) Validate() error {
	if err := checkCurrency(p.Currency); err != nil {
		return err
	}
	err := errors.Join(checkRate("--price-cpu-second", p.CPUSecond), checkRate("--price-gb-second", p.GBSecond), checkRate("--price-gb-transferred", p.GBTransferred))
	for _, model := range slices.Sorted(maps.Keys(p.Tokens)) {
		t := p.Tokens[model]
		err = errors.Join(err, checkRate("the input tokens of "+model, t.Input), checkRate("the output tokens of "+model, t.Output))
	}
	return err
}

func checkRate(name string, v float64) error {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("price of %s is %v: want a number of at least 0", name, v)
	}
	return nil
}

// ParseTokenPrice reads MODEL=INPUT/OUTPUT, the prices of a million input
// and output tokens of a model: claude-sonnet-4=3/15.
func ParseTokenPrice(s string) (string, TokenPrice, error) {
	model, rates, ok := strings.Cut(s, "=")
	in, out, ok2 := strings.Cut(rates, "/")
	model = strings.TrimSpace(model)
	if !ok || !ok2 || model == "" {
		return "", TokenPrice{}, fmt.Errorf("token price %q: want MODEL=INPUT/OUTPUT, the price of a million input and output tokens, such as claude-sonnet-4=3/15", s)
	}
	var t TokenPrice
	var err error
	if t.Input, err = ParseAmount(in); err == nil {
		t.Output, err = ParseAmount(out)
	}
	if err != nil {
		return "", TokenPrice{}, fmt.Errorf("token price %q: %w", s, err)
	}
	return model, t, nil
}

// ParseAmount reads a non-negative decimal amount.
func ParseAmount(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not an amount: want a number of at least 0, such as 12.5", s)
	}
	return v, nil
}

// tokenPrice returns the price of model's tokens: its own, else that of
// the longest configured name the model starts with.
func (p *Prices) tokenPrice(model string) (TokenPrice, bool) {
	if t, ok := p.Tokens[model]; ok {
		return t, true
	}
	best, found := "", false
	for name := range p.Tokens {
		if strings.HasPrefix(model, name) && len(name) > len(best) {
			best, found = name, true
		}
	}
	return p.Tokens[best], found
}

// Price prices cpuSeconds of CPU and u. Tokens of a model without a price
// cost nothing (Unpriced lists them).
func (p *Prices) Price(cpuSeconds float64, u routine.Usage) api.CostAmount {
	a := api.CostAmount{
		CPU:      cpuSeconds * p.CPUSecond,
		Memory:   u.GBSeconds * p.GBSecond,
		Transfer: float64(u.BytesSent+u.BytesReceived) / routine.BytesPerGB * p.GBTransferred,
	}
	for model, t := range u.Tokens {
		if price, ok := p.tokenPrice(model); ok {
			a.Tokens += (float64(t.Input)*price.Input + float64(t.Output)*price.Output) / 1e6
		}
	}
	a.Total = a.CPU + a.Memory + a.Transfer + a.Tokens
	return a
}

// Unpriced returns the models of u that have no token price, sorted.
func (p *Prices) Unpriced(u routine.Usage) []string {
	var out []string
	for model := range u.Tokens {
		if _, ok := p.tokenPrice(model); !ok {
			out = append(out, model)
		}
	}
	slices.Sort(out)
	return out
}

// checkCurrency accepts a label of 1 to 8 letters.
func checkCurrency(c string) error {
	if c == "" || len(c) > 8 || strings.IndexFunc(c, func(r rune) bool { return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z') }) >= 0 {
		return fmt.Errorf("currency %q: want a label of 1 to 8 letters, such as USD or EUR", c)
	}
	return nil
}
