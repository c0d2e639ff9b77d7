package routine

import (
	"math"
	"strconv"
	"time"
)

// Alert watches one measure of a routine's recent runs: it fires once
// when its condition starts to hold over the window, and clears once
// when it stops; each time it notifies Slack and/or a webhook.
type Alert struct {
	Name   string      `yaml:"name,omitempty" json:"name,omitempty" jsonschema:"description=Names the alert in notifications and records (default: its when); unique in the routine."`
	When   string      `yaml:"when" json:"when" jsonschema:"required,description=The condition: a metric\\, an operator (> >= < <=) and a threshold\\, such as p95_latency > 2s\\, error_rate > 0.05 (or 5%)\\, dead_letters > 0. Metrics: p50_latency\\, p95_latency\\, p99_latency\\, avg_latency\\, queue_wait_p50\\, queue_wait_p95\\, error_rate\\, runs\\, failures\\, dead_letters."`
	Over   Duration    `yaml:"over,omitempty" json:"over,omitempty" jsonschema:"description=The window of ended runs the metric is computed over\\, up to now (default 15m; at least 1m)."`
	Notify AlertNotify `yaml:"notify" json:"notify" jsonschema:"required"`
	// Condition is When, read by validation.
	Condition Condition `yaml:"-" json:"-"`
}

// AlertNotify says where an alert's firing and clearing go: Slack, a
// webhook, or both.
type AlertNotify struct {
	Slack        string `yaml:"slack,omitempty" json:"slack,omitempty" jsonschema:"description=Slack channel to post to (#ops or an id such as C0123…)\\, with chat.postMessage and slack_token."`
	SlackToken   string `yaml:"slack_token,omitempty" json:"slack_token,omitempty" jsonschema:"description=Bot token (xoxb-…) of the Slack post\\, as a secret reference; default {{SLACK_BOT_TOKEN}}\\, which the routine must then declare."`
	SlackBaseURL string `yaml:"slack_base_url,omitempty" json:"slack_base_url,omitempty" jsonschema:"description=Slack Web API URL (default https://slack.com/api/)."`
	Webhook      string `yaml:"webhook,omitempty" json:"webhook,omitempty" jsonschema:"description=http:// or https:// URL that gets a JSON POST of each firing and clearing; a secret reference such as {{ALERT_HOOK_URL}} keeps a URL holding a token out of the file."`
}

// DefaultAlertSlackToken is the token of an alert's Slack post that names
// none.
const DefaultAlertSlackToken = "{{SLACK_BOT_TOKEN}}"

// DefaultAlertOver is the window of an alert that sets no over:.
const DefaultAlertOver = Duration(15 * time.Minute)

// MinAlertOver is the shortest window: the runs' rollups are kept per
// minute.
const MinAlertOver = Duration(time.Minute)

// Condition is an alert's when: Metric Op Threshold. Threshold is in the
// metric's unit: seconds for a duration, a ratio (0 to 1) for a rate, a
// number of runs for a count.
type Condition struct {
	Metric    string  `json:"metric"`
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
}

// Holds reports whether value meets the condition.
func (c Condition) Holds(value float64) bool {
	switch c.Op {
	case ">":
		return value > c.Threshold
	case ">=":
		return value >= c.Threshold
	case "<":
		return value < c.Threshold
	case "<=":
		return value <= c.Threshold
	}
	return false
}

// AlertOps are the operators of a condition.
var AlertOps = []string{">=", "<=", ">", "<"}

// MetricUnit is what a metric counts, which says how its threshold is
// written and its value shown.
type MetricUnit int

// The units of metrics.
const (
	UnitDuration MetricUnit = iota + 1 // seconds; written 2s, 500ms
	UnitRatio                          // 0 to 1; written 0.05 or 5%
	UnitCount                          // runs; written 0, 3
)

// Metric is one measure an alert may watch, over its window of ended runs.
type Metric struct {
	Name string
	Unit MetricUnit
	Doc  string
}

// Metrics are the measures alerts watch, in the order docs list them.
var Metrics = []Metric{
	{"p50_latency", UnitDuration, "median duration of the runs, start to end"},
	{"p95_latency", UnitDuration, "95th percentile of the runs' durations"},
	{"p99_latency", UnitDuration, "99th percentile of the runs' durations"},
	{"avg_latency", UnitDuration, "mean duration of the runs"},
	{"queue_wait_p50", UnitDuration, "median wait of the runs from queued to started"},
	{"queue_wait_p95", UnitDuration, "95th percentile of that wait"},
	{"error_rate", UnitRatio, "runs that failed or went dead, out of the runs that ended"},
	{"runs", UnitCount, "runs that ended"},
	{"failures", UnitCount, "runs that failed or went dead"},
	{"dead_letters", UnitCount, "runs that went dead (dead_letter: true)"},
}

// MetricNamed returns the metric with this name.
func MetricNamed(name string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// MetricNames lists the names of Metrics.
func MetricNames() []string {
	names := make([]string, len(Metrics))
	for i, m := range Metrics {
		names[i] = m.Name
	}
	return names
}

// Format writes a value of metric m as a threshold of it is written:
// 2.5s, 5%, 3.
func (m Metric) Format(v float64) string {
	switch m.Unit {
	case UnitDuration:
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	case UnitRatio:
		return strconv.FormatFloat(math.Round(v*10000)/100, 'f', -1, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// The states of an alert.
const (
	AlertOK     = "ok"     // its condition does not hold (or it never fired)
	AlertFiring = "firing" // its condition holds
)

// AlertRecord is the record of one firing (State AlertFiring) or clearing
// (AlertOK) of an alert, and of the delivery of its notifications.
type AlertRecord struct {
	ID        int64   `json:"id"`
	Routine   string  `json:"routine"`
	Alert     string  `json:"alert"` // its name
	State     string  `json:"state"` // the state it moved to
	When      string  `json:"when"`  // the condition, as written
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`     // in the metric's unit: seconds, a ratio, runs
	Threshold float64 `json:"threshold"` // in the same unit
	// Runs is how many runs ended in the window the value is computed
	// over; a latency or a rate of no runs has no value (0).
	Runs int64     `json:"runs"`
	Over Duration  `json:"over"` // the window
	At   time.Time `json:"at"`
	// StartedAt is when the alert started firing: At for a firing, the
	// firing's At for a clearing.
	StartedAt time.Time `json:"started_at"`
	// Deliveries are the notifications of the record, one per target.
	Deliveries []AlertDelivery `json:"deliveries"`
	// Done: no delivery is due any more (each target took it, or the
	// tries ran out).
	Done     bool      `json:"done"`
	Attempts int       `json:"attempts"`
	NextTry  time.Time `json:"next_try"`
	Holder   string    `json:"-"` // the claim that delivers it now
}

// AlertDelivery is the notification of one target of a record.
type AlertDelivery struct {
	Target string    `json:"target"` // "slack" or "webhook"
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"` // why the last try failed
	At     time.Time `json:"at,omitzero"`     // of the last try
}

// ValueText writes the record's value as a threshold of its metric is
// written (3.2s, 7%, 4), or says there was none: a latency or a rate of
// no runs.
func (r *AlertRecord) ValueText() string {
	m, ok := MetricNamed(r.Metric)
	switch {
	case !ok:
		return strconv.FormatFloat(r.Value, 'f', -1, 64)
	case r.Runs == 0 && m.Unit != UnitCount:
		return "no runs"
	}
	return m.Format(r.Value)
}

// ThresholdText writes the record's threshold as its metric's values are
// written.
func (r *AlertRecord) ThresholdText() string {
	if m, ok := MetricNamed(r.Metric); ok {
		return m.Format(r.Threshold)
	}
	return strconv.FormatFloat(r.Threshold, 'f', -1, 64)
}
