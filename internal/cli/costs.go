package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// costOptions are the flags of the costs configuration (cost.Config),
// which serve, server and costs share: flags, else ROUTINES_*
// variables, else the file of --costs, else defaults.
type costOptions struct {
	file     string
	currency string
	// The rates as written, "" when not given: a flag given overrides the
	// environment and the file.
	cpuSecond, gbSecond, gbTransferred string
	tokens                             []string
	budgets                            []string
	notify                             string
}

func (o *costOptions) flags(f *pflag.FlagSet, daemon bool) {
	f.StringVar(&o.file, "costs", "", "YAML file of prices, budgets and notify (env ROUTINES_COSTS)")
	f.StringVar(&o.currency, "currency", "", "label of the amounts, such as USD or EUR (env ROUTINES_CURRENCY; default USD)")
	f.StringVar(&o.cpuSecond, "price-cpu-second", "", "price of a CPU-second, user + system (env ROUTINES_PRICE_CPU_SECOND; default 0)")
	f.StringVar(&o.gbSecond, "price-gb-second", "", "price of a GB-second: peak memory in GiB × wall time of each step (env ROUTINES_PRICE_GB_SECOND; default 0)")
	f.StringVar(&o.gbTransferred, "price-gb-transferred", "", "price of a GiB sent or received (env ROUTINES_PRICE_GB_TRANSFERRED; default 0)")
	f.StringArrayVar(&o.tokens, "price-tokens", nil, "MODEL=INPUT/OUTPUT: price of a million input and output tokens of a model, or of the models whose names start with MODEL (repeatable), such as claude-sonnet-4=3/15")
	f.StringArrayVar(&o.budgets, "budget", nil, "TAG=AMOUNT[,on_exceed=stop|warn]: monthly budget of the routines tagged TAG (repeatable); warns at 80 %, and with on_exceed=stop refuses their new runs at 100 %")
	if daemon {
		f.StringVar(&o.notify, "budget-notify", "", "URL a budget's crossing of 80 % or 100 % is POSTed to, as JSON (env ROUTINES_BUDGET_NOTIFY)")
	}
}

// load builds the configuration from the flags, the environment and the
// file, in that order of precedence, and validates it.
func (o *costOptions) load(g *globals) (*cost.Config, error) {
	c := &cost.Config{}
	if path := cmp.Or(o.file, g.getenv("ROUTINES_COSTS")); path != "" {
		var err error
		if c, err = cost.LoadFile(path); err != nil {
			return nil, invalid(err)
		}
	}
	c.Prices.Currency = cmp.Or(o.currency, g.getenv("ROUTINES_CURRENCY"), c.Prices.Currency)
	c.Notify = cmp.Or(o.notify, g.getenv("ROUTINES_BUDGET_NOTIFY"), c.Notify)
	for _, r := range []struct {
		flag, env, value string
		rate             *float64
	}{
		{"--price-cpu-second", "ROUTINES_PRICE_CPU_SECOND", o.cpuSecond, &c.Prices.CPUSecond},
		{"--price-gb-second", "ROUTINES_PRICE_GB_SECOND", o.gbSecond, &c.Prices.GBSecond},
		{"--price-gb-transferred", "ROUTINES_PRICE_GB_TRANSFERRED", o.gbTransferred, &c.Prices.GBTransferred},
	} {
		v, from := r.value, r.flag
		if v == "" {
			v, from = g.getenv(r.env), r.env
		}
		if v == "" {
			continue
		}
		amount, err := cost.ParseAmount(v)
		if err != nil {
			return nil, invalidf("%s: %v", from, err)
		}
		*r.rate = amount
	}
	for _, s := range o.tokens {
		model, price, err := cost.ParseTokenPrice(s)
		if err != nil {
			return nil, invalidf("--price-tokens: %v", err)
		}
		if c.Prices.Tokens == nil {
			c.Prices.Tokens = map[string]cost.TokenPrice{}
		}
		c.Prices.Tokens[model] = price
	}
	for _, s := range o.budgets {
		b, err := cost.ParseBudget(s)
		if err != nil {
			return nil, invalidf("--budget: %v", err)
		}
		c.SetBudget(b)
	}
	if err := c.Validate(); err != nil {
		return nil, invalid(err)
	}
	return c, nil
}

// costsCmdOptions are the flags of costs.
type costsCmdOptions struct {
	costOptions
	by    string
	since time.Duration
}

func newCostsCmd(g *globals) *cobra.Command {
	o := &costsCmdOptions{}
	cmd := &cobra.Command{
		Use:   "costs",
		Short: "What runs used and cost, by routine or tag, against the monthly budgets",
		Long: "costs shows, per routine or per tag, what the runs that ended within --since used — CPU-seconds,\n" +
			"GB-seconds, bytes sent and received, model tokens — priced at the configured rates, with the total and\n" +
			"the status of the per-tag budgets of the month. With --profile it asks that server, priced at its rates;\n" +
			"else it reads the project's store, priced at the rates of --costs, the --price flags and ROUTINES_* variables.\n" +
			"Docs: " + docsURL + "/costs.md",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.costs(cmd.Context(), o, cmd.Flags().Lookup("since").Value.String())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.by, "by", cost.ByRoutine, "group by routine or tag")
	durationVar(f, &o.since, "since", 30*24*time.Hour, "the runs that ended within this long, such as 24h or 30d")
	o.costOptions.flags(f, false)
	return cmd
}

func (g *globals) costs(ctx context.Context, o *costsCmdOptions, since string) error {
	if o.by != cost.ByRoutine && o.by != cost.ByTag {
		return invalidf("--by %s: want routine or tag", o.by)
	}
	if o.since <= 0 {
		return invalidf("--since %s: want a positive duration such as 30d", since)
	}
	rm, err := g.remote("")
	if err != nil {
		return err
	}
	var rep *api.CostReport
	if rm != nil {
		if rep, err = rm.c.Costs(ctx, o.by, since); err != nil {
			return g.apiErr(err)
		}
	} else if rep, err = g.localCosts(ctx, o); err != nil {
		return err
	}
	if g.output == "json" {
		return writeJSON(g.deps.Stdout, rep)
	}
	return writeCosts(g.deps.Stdout, rep)
}

// localCosts reads the costs from the project's store: its routines'
// tags as their files have them now, its budgets at the time of g.now.
func (g *globals) localCosts(ctx context.Context, o *costsCmdOptions) (*api.CostReport, error) {
	cfg, err := o.load(g)
	if err != nil {
		return nil, err
	}
	var rep *api.CostReport
	err = g.withProject(ctx, func(st store.Store, dir string) error {
		routines, err := project.Discover(dir, io.Discard, func(*routine.Routine) error { return nil })
		if err != nil {
			return invalid(err)
		}
		now := g.now().UTC()
		rep, err = cost.Read(ctx, st, cost.Query{By: o.by, Since: now.Add(-o.since), Until: now, Tags: cost.TagsOf(routines), Prices: &cfg.Prices})
		if err != nil || len(cfg.Budgets) == 0 {
			return err
		}
		budgets := cost.NewBudgets(cost.BudgetsConfig{Budgets: cfg.Budgets, Prices: cfg.Prices, Stats: st,
			Routines: func() []*routine.Routine { return routines }, Clock: clock.NewVirtual(now)})
		budgets.Refresh(ctx)
		rep.Budgets = budgets.Status()
		return nil
	})
	return rep, err
}

// writeCosts prints a report as two tables: the rows with their total,
// and the budgets.
func writeCosts(w io.Writer, rep *api.CostReport) error {
	fmt.Fprintf(w, "costs of the runs that ended from %s to %s UTC, by %s, in %s\n\n", rep.Since.UTC().Format("2006-01-02 15:04"), rep.Until.UTC().Format("2006-01-02 15:04"), rep.By, rep.Currency)
	rows := [][]string{{strings.ToUpper(rep.By), "RUNS", "CPU-S", "GB-S", "SENT", "RECEIVED", "TOKENS IN/OUT", "COST"}}
	for _, r := range append(slices.Clone(rep.Rows), rep.Total) {
		rows = append(rows, []string{r.Name, fmt.Sprint(r.Runs), fmt.Sprintf("%.2f", r.CPUSeconds), fmt.Sprintf("%.3f", r.GBSeconds),
			bytesHuman(r.BytesSent), bytesHuman(r.BytesReceived), tokenCounts(r.Tokens), fmt.Sprintf("%.4f", r.Cost.Total)})
	}
	if err := table(w, rows); err != nil {
		return err
	}
	if len(rep.Unpriced) > 0 {
		fmt.Fprintf(w, "\nnote: the tokens of %s have no price: give --price-tokens MODEL=INPUT/OUTPUT\n", strings.Join(rep.Unpriced, ", "))
	}
	if len(rep.Budgets) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nbudgets of %s\n\n", rep.Budgets[0].Month.Format("January 2006"))
	rows = [][]string{{"TAG", "SPENT", "BUDGET", "USED", "STATE", "ON EXCEED"}}
	for _, b := range rep.Budgets {
		state := b.State
		if b.Refusing {
			state += ", refusing new runs"
		}
		rows = append(rows, []string{b.Tag, fmt.Sprintf("%.2f", b.Spent), fmt.Sprintf("%.2f", b.Amount), fmt.Sprintf("%.0f%%", b.Percent), state, b.OnExceed})
	}
	return table(w, rows)
}

// tokenCounts shows the tokens of every model summed, as IN/OUT, or "-".
func tokenCounts(t map[string]routine.Tokens) string {
	if len(t) == 0 {
		return "-"
	}
	var in, out int64
	for _, m := range slices.Sorted(maps.Keys(t)) {
		in, out = in+t[m].Input, out+t[m].Output
	}
	return fmt.Sprintf("%d/%d", in, out)
}
