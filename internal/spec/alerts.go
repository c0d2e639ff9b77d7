package spec

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// alerts checks the alerts: of a routine: each condition read into its
// Condition, a window of at least a minute, somewhere to notify, and
// tokens and URLs that come from secrets where they hold credentials.
func (v *validator) alerts() {
	first := map[string]string{} // alert name → path of its first use
	for i := range v.r.Alerts {
		p := "$.alerts[" + strconv.Itoa(i) + "]"
		a := &v.r.Alerts[i]
		v.alert(p, a)
		name := alertName(a)
		switch {
		case name == "":
		case first[name] != "":
			at := p
			if v.given(p + ".name") {
				at = p + ".name"
			}
			v.errorf(at, "%s: an alert named %q comes first on line %d: give one of them another name:", human(p), name, v.line(first[name]))
		default:
			first[name] = p
		}
	}
}

// alertName is the name an alert goes by: its name:, else its when.
func alertName(a *routine.Alert) string {
	return cmp.Or(strings.TrimSpace(a.Name), strings.TrimSpace(a.When))
}

func (v *validator) alert(p string, a *routine.Alert) {
	if strings.TrimSpace(a.When) == "" {
		v.errorf(p+".when", "%s needs when: a condition such as \"p95_latency > 2s\", \"error_rate > 0.05\" or \"dead_letters > 0\"", human(p))
	} else if c, err := ParseCondition(a.When); err != nil {
		v.errorf(p+".when", "%s %q: %v", human(p+".when"), a.When, err)
	} else {
		a.Condition = c
	}
	if v.given(p+".over") && a.Over < routine.MinAlertOver {
		v.errorf(p+".over", "%s must be at least %s (runs are counted per minute), got %s", human(p+".over"), routine.MinAlertOver, a.Over)
	}
	n, np := &a.Notify, p+".notify"
	if strings.TrimSpace(n.Slack) == "" && strings.TrimSpace(n.Webhook) == "" {
		v.errorf(np, "%s needs notify: with slack: \"#ops\" (a channel) and/or webhook: https://… (a URL that gets a JSON POST)", human(p))
	}
	switch {
	case n.SlackToken != "" && n.Slack == "":
		v.keyErrorf(np+".slack_token", "%s.slack_token only applies with slack: (the channel to post to)", human(np))
	case n.SlackToken != "":
		v.secretField(np, "slack_token", n.SlackToken, "SLACK_BOT_TOKEN")
	case n.Slack != "" && !v.declaredSecret("SLACK_BOT_TOKEN"):
		v.errorf(np+".slack", "%s.slack needs a bot token: declare the secret SLACK_BOT_TOKEN (secrets: [SLACK_BOT_TOKEN]), which the daemon resolves when the alert notifies, or name another with slack_token: \"{{NAME}}\"", human(np))
	}
	if u := n.SlackBaseURL; u != "" {
		if n.Slack == "" {
			v.keyErrorf(np+".slack_base_url", "%s.slack_base_url only applies with slack: (the channel to post to)", human(np))
		} else if _, err := routine.CheckHTTPURL(u); err != nil {
			v.errorf(np+".slack_base_url", "%s.slack_base_url %s", human(np), err)
		}
	}
	v.webhook(np+".webhook", n.Webhook)
}

// webhook checks the URL an alert posts to: written whole, or one
// reference to a declared secret that holds it (the URL of a hook may
// carry its credential).
func (v *validator) webhook(p, u string) {
	if !strings.Contains(u, "{{") {
		if _, err := routine.CheckHTTPURL(u); u != "" && err != nil {
			v.errorf(p, "%s %s", human(p), err)
		}
		return
	}
	switch sm := secretOnly.FindStringSubmatch(u); {
	case sm == nil:
		v.errorf(p, "%s: write the whole URL, or one secret reference that holds it such as \"{{ALERT_WEBHOOK_URL}}\": a template inside a URL is not rendered", human(p))
	case !v.declaredSecret(sm[1]):
		v.errorf(p, "%s: %s is not a declared secret: %s", human(p), sm[1], v.undeclared(sm[1], nil))
	}
}

// conditionPattern cuts a condition into its metric, its operator (any
// run of comparison signs, judged after) and its threshold.
var conditionPattern = regexp.MustCompile(`^\s*([A-Za-z0-9_.]*)\s*([<>=!]*)\s*(.*?)\s*$`)

// ParseCondition reads an alert's when: a metric of routine.Metrics, an
// operator of routine.AlertOps and a threshold in the metric's unit. The
// error says what to write instead.
func ParseCondition(s string) (routine.Condition, error) {
	m := conditionPattern.FindStringSubmatch(s)
	name, op, threshold := m[1], m[2], m[3]
	metric, ok := routine.MetricNamed(name)
	if !ok {
		names := routine.MetricNames()
		if name == "" {
			return routine.Condition{}, fmt.Errorf("start with a metric, one of %s", strings.Join(names, ", "))
		}
		hint := ""
		if c := suggest.Closest(name, names); c != "" {
			hint = fmt.Sprintf("did you mean %s? ", c)
		}
		return routine.Condition{}, fmt.Errorf("unknown metric %q: %sthe metrics are %s", name, hint, strings.Join(names, ", "))
	}
	example := metric.Name + " > " + exampleThreshold[metric.Unit]
	switch {
	case op == "":
		return routine.Condition{}, fmt.Errorf("write an operator (>, >=, < or <=) and a threshold after %s, such as %s", metric.Name, example)
	case op == "=" || op == "==" || op == "!=":
		return routine.Condition{}, fmt.Errorf("%s is not an operator of alerts: write >, >=, < or <=, such as %s", op, example)
	case !slices.Contains(routine.AlertOps, op):
		return routine.Condition{}, fmt.Errorf("%s is not an operator: write >, >=, < or <=, such as %s", op, example)
	case threshold == "":
		return routine.Condition{}, fmt.Errorf("write a threshold after %s, such as %s", op, example)
	}
	v, err := parseThreshold(metric, threshold)
	if err != nil {
		return routine.Condition{}, err
	}
	return routine.Condition{Metric: metric.Name, Op: op, Threshold: v}, nil
}

// exampleThreshold is a threshold of each unit, for messages.
var exampleThreshold = map[routine.MetricUnit]string{
	routine.UnitDuration: "2s",
	routine.UnitRatio:    "0.05",
	routine.UnitCount:    "0",
}

// parseThreshold reads a threshold in the unit of metric m: a duration
// (in seconds), a ratio from 0 to 1 (or a percentage), or a count of runs.
func parseThreshold(m routine.Metric, s string) (float64, error) {
	num, numErr := strconv.ParseFloat(s, 64)
	isNum := numErr == nil && !math.IsNaN(num) && !math.IsInf(num, 0)
	var d routine.Duration
	isDuration := !isNum && d.UnmarshalText([]byte(s)) == nil
	switch m.Unit {
	case routine.UnitDuration:
		switch {
		case isDuration:
			return d.D().Seconds(), nil
		case isNum:
			return 0, fmt.Errorf("%s is a duration: write its threshold with a unit, such as %ss or %sms, not %s", m.Name, s, s, s)
		}
		return 0, fmt.Errorf("%s is a duration: write a threshold such as 2s, 500ms or 1m, not %q", m.Name, s)
	case routine.UnitRatio:
		if pct, ok := strings.CutSuffix(s, "%"); ok {
			if p, err := strconv.ParseFloat(strings.TrimSpace(pct), 64); err == nil && p >= 0 && p <= 100 {
				return p / 100, nil
			}
			return 0, fmt.Errorf("%s: a percentage is from 0%% to 100%%, such as 5%%, not %s", m.Name, s)
		}
		switch {
		case isDuration:
			return 0, fmt.Errorf("%s is a ratio of runs, not a duration: write a threshold such as 0.05 or 5%%, not %s", m.Name, s)
		case isNum && num >= 0 && num <= 1:
			return num, nil
		case isNum && num > 1 && num <= 100:
			return 0, fmt.Errorf("%s is a ratio from 0 to 1: write %s%% or %s for %s percent", m.Name, s, strconv.FormatFloat(num/100, 'f', -1, 64), s)
		}
		return 0, fmt.Errorf("%s is a ratio from 0 to 1: write a threshold such as 0.05 or 5%%, not %s", m.Name, s)
	}
	switch {
	case isDuration:
		return 0, fmt.Errorf("%s counts runs, not time: write a number of runs such as 0 or 3, not %s", m.Name, s)
	case isNum && num >= 0 && num == math.Trunc(num):
		return num, nil
	}
	return 0, fmt.Errorf("%s counts runs: write a whole number such as 0 or 3, not %s", m.Name, s)
}
