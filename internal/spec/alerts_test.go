package spec

import (
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestParseCondition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		when string
		want routine.Condition
	}{
		{"p95_latency > 2s", routine.Condition{Metric: "p95_latency", Op: ">", Threshold: 2}},
		{"avg_latency>=1m30s", routine.Condition{Metric: "avg_latency", Op: ">=", Threshold: 90}},
		{"  queue_wait_p95 > 500ms ", routine.Condition{Metric: "queue_wait_p95", Op: ">", Threshold: 0.5}},
		{"p99_latency <= 1d", routine.Condition{Metric: "p99_latency", Op: "<=", Threshold: 86400}},
		{"error_rate > 0.05", routine.Condition{Metric: "error_rate", Op: ">", Threshold: 0.05}},
		{"error_rate > 5%", routine.Condition{Metric: "error_rate", Op: ">", Threshold: 0.05}},
		{"error_rate < 1", routine.Condition{Metric: "error_rate", Op: "<", Threshold: 1}},
		{"dead_letters > 0", routine.Condition{Metric: "dead_letters", Op: ">", Threshold: 0}},
		{"runs < 1", routine.Condition{Metric: "runs", Op: "<", Threshold: 1}},
		{"failures >= 3", routine.Condition{Metric: "failures", Op: ">=", Threshold: 3}},
	}
	for _, tt := range tests {
		got, err := ParseCondition(tt.when)
		if err != nil || got != tt.want {
			t.Errorf("ParseCondition(%q) = %+v, %v; want %+v", tt.when, got, err, tt.want)
		}
	}
}

func TestConditionHolds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		op   string
		v    float64
		want bool
	}{{">", 2, false}, {">", 2.1, true}, {">=", 2, true}, {"<", 2, false}, {"<", 1.9, true}, {"<=", 2, true}, {"<=", 2.1, false}} {
		c := routine.Condition{Metric: "runs", Op: tt.op, Threshold: 2}
		if got := c.Holds(tt.v); got != tt.want {
			t.Errorf("%s 2 holds for %v = %v, want %v", tt.op, tt.v, got, tt.want)
		}
	}
}
