package api

import (
	"net/url"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Stats is the answer of GET /v1/stats and what `routines stats -o json`
// writes: what the runs that ended in [Since, Until) amount to, per
// routine and over all of them (internal/stats computes it).
type Stats struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// StepSeconds is the width of the points of each Series; 0 when no
	// series was asked for.
	StepSeconds float64        `json:"step_seconds"`
	Overall     RoutineStats   `json:"overall"`
	Routines    []RoutineStats `json:"routines"`
}

// RoutineStats are the figures of one routine ("" in Stats.Overall), and
// their series over time.
type RoutineStats struct {
	Routine string `json:"routine,omitempty"`
	Summary
	// Series are the figures per step, oldest first; a step with no run
	// ended is missing. [] when none was asked for.
	Series []StatsPoint `json:"series"`
}

// StatsPoint is the Summary of the runs that ended in [Start, Start+step).
type StatsPoint struct {
	Start time.Time `json:"start"`
	Summary
}

// Summary is what a set of ended runs amounts to. Rates are fractions (0
// to 1) of Invocations, 0 when there was none; times are in seconds;
// latencies are from start to end of the runs that started, quantiles
// estimated from histograms (within a bucket's width).
type Summary struct {
	Invocations int64                   `json:"invocations"`
	ByState     map[routine.State]int64 `json:"by_state"`
	SuccessRate float64                 `json:"success_rate"`
	// ErrorRate counts failed and dead runs; cancelled ones are neither.
	ErrorRate           float64 `json:"error_rate"`
	LatencyAvgSeconds   float64 `json:"latency_avg_seconds"`
	LatencyP50Seconds   float64 `json:"latency_p50_seconds"`
	LatencyP95Seconds   float64 `json:"latency_p95_seconds"`
	QueueWaitP95Seconds float64 `json:"queue_wait_p95_seconds"`
	CPUSeconds          float64 `json:"cpu_seconds"`
	GBSeconds           float64 `json:"gb_seconds"`
	// PeakMemoryBytes is the most memory a run held (its largest step's
	// peak resident set).
	PeakMemoryBytes int64 `json:"peak_memory_bytes"`
	BytesSent       int64 `json:"bytes_sent"`
	BytesReceived   int64 `json:"bytes_received"`
	// Tokens are the tokens of llm and agent steps, by model; {} when none.
	Tokens map[string]routine.Tokens `json:"tokens"`
}

// StatsQuery is the query of GET /v1/stats and GET /v1/report, as the
// parameters take them: Since and Until are a duration before now (24h,
// 7d) or an RFC 3339 time; Step is a duration, "" for no series.
type StatsQuery struct {
	Routines []string
	Since    string
	Until    string
	Step     string
}

// Values encodes the query.
func (q StatsQuery) Values() url.Values {
	v := url.Values{}
	for _, r := range q.Routines {
		v.Add("routine", r)
	}
	for k, s := range map[string]string{"since": q.Since, "until": q.Until, "step": q.Step} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Report is the value report of GET /v1/report and `routines report -o
// json`: what the automation did over [Since, Until), per routine, per
// tag (a routine's tags as its file declares them now) and in total.
type Report struct {
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	GeneratedAt time.Time `json:"generated_at"`
	// TrendStepSeconds is the width of the points of each ErrorTrend: a
	// week over 28 days or more, a day over 2 days or more, else an hour.
	TrendStepSeconds float64     `json:"trend_step_seconds"`
	Total            ReportRow   `json:"total"`
	Routines         []ReportRow `json:"routines"`
	Tags             []ReportRow `json:"tags"`
}

// ReportRow is what the runs of a routine, of the routines of a tag, or
// of all routines (Name "") did.
type ReportRow struct {
	Name string `json:"name,omitempty"`
	// Tags are a routine's; Routines a tag's.
	Tags     []string `json:"tags,omitempty"`
	Routines []string `json:"routines,omitempty"`
	// MinutesSavedPerRun is a routine's value: (0: it declares none).
	MinutesSavedPerRun float64 `json:"minutes_saved_per_run,omitempty"`
	// Runs is the automated task volume: the runs that ended in the range.
	Runs      int64 `json:"runs"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// Dead are the runs dead-lettered: failed for good, input kept for replay.
	Dead      int64   `json:"dead"`
	Cancelled int64   `json:"cancelled"`
	ErrorRate float64 `json:"error_rate"` // (failed + dead) / runs
	// HoursSaved is succeeded runs × minutes_saved_per_run / 60, summed
	// over the routines that declare a value.
	HoursSaved float64 `json:"hours_saved"`
	ErrorTrend Trend   `json:"error_trend"`
	// Incidents are the failure streaks that began in the range (a failed
	// or dead run after a success, or first in the range); Recovered
	// those a success ended; OpenIncidents those still failing at Until.
	Incidents     int `json:"incidents"`
	Recovered     int `json:"recovered"`
	OpenIncidents int `json:"open_incidents"`
	// MTTRSeconds is the mean time to recovery: from the first failure of
	// an incident to the next success, over the recovered incidents; null
	// when none was.
	MTTRSeconds *float64 `json:"mttr_seconds"`
}

// Trend is the error rate over time, and its direction: the error rate
// of the second half of the range against the first.
type Trend struct {
	Points     []TrendPoint `json:"points"`
	FirstHalf  *float64     `json:"first_half"`  // null: no run ended then
	SecondHalf *float64     `json:"second_half"` // null: no run ended then
	// Direction is "better" or "worse" when the halves differ by more than
	// a percentage point, else "steady"; "unknown" when a half had no run.
	Direction string `json:"direction"`
}

// TrendPoint is the error rate of the runs that ended in [Start,
// Start+step); every step of the range has one, oldest first.
type TrendPoint struct {
	Start     time.Time `json:"start"`
	Runs      int64     `json:"runs"`
	Errors    int64     `json:"errors"`
	ErrorRate float64   `json:"error_rate"`
}
