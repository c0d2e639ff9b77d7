package cost

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/goccy/go-yaml"
)

// Config is the costs configuration of a daemon, and of `routines costs`
// run against a project's store: the rates, the per-tag budgets and
// where budget crossings are notified. It comes from flags, else
// ROUTINES_* variables, else a YAML file (LoadFile), else defaults.
type Config struct {
	Prices  Prices   `yaml:"prices"`
	Budgets []Budget `yaml:"budgets"`
	// Notify is a URL each budget crossing is POSTed to (JSON).
	Notify string `yaml:"notify"`
}

// LoadFile reads a costs file:
//
//	prices:
//	  currency: EUR
//	  cpu_second: 0.00002
//	  gb_second: 0.0000025
//	  gb_transferred: 0.09
//	  tokens:
//	    claude-sonnet-4: {input: 3, output: 15}
//	budgets:
//	  - {tag: prod, amount: 100, on_exceed: stop}
//	notify: https://hooks.example.com/budgets
//
// Unknown keys are errors, reported as file:line:col.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("costs file: %w", err)
	}
	c := &Config{}
	if err := yaml.UnmarshalWithOptions(data, c, yaml.Strict()); err != nil {
		var se yaml.Error
		if errors.As(err, &se) && se.GetToken() != nil {
			p := se.GetToken().Position
			return nil, fmt.Errorf("%s:%d:%d: %s", path, p.Line, p.Column, se.GetMessage())
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SetBudget adds b, or replaces the budget of its tag.
func (c *Config) SetBudget(b Budget) {
	if i := slices.IndexFunc(c.Budgets, func(o Budget) bool { return o.Tag == b.Tag }); i >= 0 {
		c.Budgets[i] = b
		return
	}
	c.Budgets = append(c.Budgets, b)
}

// Validate fills the defaults (currency USD, on_exceed warn) and checks
// the rates and budgets; a tag may have one budget.
func (c *Config) Validate() error {
	if c.Prices.Currency == "" {
		c.Prices.Currency = DefaultCurrency
	}
	errs := []error{c.Prices.Validate()}
	seen := map[string]bool{}
	for i := range c.Budgets {
		b := &c.Budgets[i]
		errs = append(errs, b.Validate())
		if seen[b.Tag] {
			errs = append(errs, fmt.Errorf("tag %s has two budgets: keep one", b.Tag))
		}
		seen[b.Tag] = true
	}
	return errors.Join(errs...)
}
