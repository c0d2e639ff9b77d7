package routine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is the state of a run or of one of its steps.
type State string

// Run and step states. A run moves queued → running → one of the final
// states; a step may also end skipped.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateDead      State = "dead"
	StateCancelled State = "cancelled"
	StateSkipped   State = "skipped"
)

// Final reports whether the state is an end state.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateDead, StateCancelled, StateSkipped:
		return true
	}
	return false
}

// RunStates lists the states a run can be in, for validating filters.
var RunStates = []State{StateQueued, StateRunning, StateSucceeded, StateFailed, StateDead, StateCancelled}

// IsRunState reports whether s is one of RunStates.
func IsRunState(s State) bool { return slices.Contains(RunStates, s) }

// RunStateNames lists RunStates, comma-separated, for the messages that
// refuse a state filter.
func RunStateNames() string {
	names := make([]string, len(RunStates))
	for i, s := range RunStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Trigger kinds recorded on runs that were not started by a routine trigger.
const (
	TriggerManual = "manual" // routines run-once
	TriggerReplay = "replay" // routines dlq replay
	TriggerRerun  = "rerun"  // routines rerun
)

// TriggerInfo says what started a run.
type TriggerInfo struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

// Run is one invocation of a routine, as recorded in the store.
type Run struct {
	ID         string            `json:"id"`
	Routine    string            `json:"routine"`
	Revision   string            `json:"revision"`
	Trigger    TriggerInfo       `json:"trigger"`
	Input      map[string]string `json:"input"`
	Tags       []string          `json:"tags"`
	State      State             `json:"state"`
	Attempt    int               `json:"attempt"`
	QueuedAt   time.Time         `json:"queued_at"`
	StartedAt  *time.Time        `json:"started_at"`
	FinishedAt *time.Time        `json:"finished_at"`
	Worker     string            `json:"worker,omitempty"`
	// Region is the region of the worker that claimed the run last: where
	// it ran.
	Region string `json:"region,omitempty"`
	// Requires is the placement of the routine when the run was queued:
	// only a worker that meets it claims the run (remote mode).
	Requires  Placement `json:"requires,omitzero"`
	CPUUserMs int64     `json:"cpu_user_ms"`
	CPUSysMs  int64     `json:"cpu_sys_ms"`
	MaxRSSKB  int64     `json:"max_rss_kb"`
	// Usage is what the run's steps consumed besides CPU, summed over
	// them, for costs.
	Usage Usage `json:"usage,omitzero"`
	// TraceID is the OpenTelemetry trace the run's spans belong to (32
	// hex digits), set when it was queued: a caller's traceparent
	// continues its own trace.
	TraceID string `json:"trace_id,omitempty"`
	// ParentSpanID is the caller's span the run's span is a child of, when
	// a traceparent came with the request that queued it.
	ParentSpanID string        `json:"parent_span_id,omitempty"`
	Error        *ErrorPayload `json:"error"`
	// ReplayOf is the id of the run this run runs again, if any: a dead
	// run it replays (trigger replay), or any ended run (trigger rerun).
	ReplayOf string `json:"replay_of,omitempty"`
}

// Usage is what a step, or a run summed over its steps, consumed that its
// costs are computed from, besides CPU time (Run.CPUUserMs, CPUSysMs).
type Usage struct {
	// GBSeconds is peak memory in GB times wall time in seconds, per step.
	GBSeconds float64 `json:"gb_seconds,omitempty"`
	// BytesSent and BytesReceived count request and response bodies of
	// the calls a step made (http, slack, email, llm, agent), artifacts
	// moved between machines, and a run step's network traffic where the
	// host can count it.
	BytesSent     int64 `json:"bytes_sent,omitempty"`
	BytesReceived int64 `json:"bytes_received,omitempty"`
	// Tokens are the tokens of llm and agent calls, by model.
	Tokens map[string]Tokens `json:"tokens,omitempty"`
}

// BytesPerGB is the GB of GBSeconds and of the GB a deployment prices
// transfer by: 2^30 bytes (a GiB), as AWS Lambda and Google Cloud bill
// memory and traffic (docs/costs.md).
const BytesPerGB = 1 << 30

// Tokens count the tokens of a model's calls.
type Tokens struct {
	Input  int64 `json:"input"`
	Output int64 `json:"output"`
}

// IsZero reports whether u counts nothing (an empty Tokens map included).
func (u Usage) IsZero() bool {
	return u.GBSeconds == 0 && u.BytesSent == 0 && u.BytesReceived == 0 && len(u.Tokens) == 0
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.GBSeconds += u2.GBSeconds
	u.BytesSent += u2.BytesSent
	u.BytesReceived += u2.BytesReceived
	for model, t := range u2.Tokens {
		u.AddTokens(model, t)
	}
}

// AddTokens adds the tokens t of model.
func (u *Usage) AddTokens(model string, t Tokens) {
	if u.Tokens == nil {
		u.Tokens = map[string]Tokens{}
	}
	sum := u.Tokens[model]
	sum.Input += t.Input
	sum.Output += t.Output
	u.Tokens[model] = sum
}

// Phase says which list of the routine a step run belongs to.
type Phase string

// The phases of a run, in the order they may happen.
const (
	PhaseMain       Phase = "main"
	PhaseCompensate Phase = "compensate"
	PhaseOnFailure  Phase = "on_failure"
)

// StepRun is the record of one step of a run.
type StepRun struct {
	RunID      string        `json:"-"`
	ID         string        `json:"id"`
	Phase      Phase         `json:"phase"`
	Kind       string        `json:"kind"`
	State      State         `json:"state"`
	Attempts   int           `json:"attempts"`
	ExitCode   *int          `json:"exit_code"`
	StartedAt  *time.Time    `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at"`
	DurationMs int64         `json:"duration_ms"`
	Outputs    Outputs       `json:"outputs"`
	CPUMs      int64         `json:"cpu_ms"`
	MaxRSSKB   int64         `json:"max_rss_kb"`
	Usage      Usage         `json:"usage,omitzero"`
	Error      *ErrorPayload `json:"error"`
}

// Stream names where a log line came from.
type Stream string

// The log streams. System lines are written by the engine itself.
const (
	StreamStdout Stream = "stdout"
	StreamStderr Stream = "stderr"
	StreamSystem Stream = "system"
)

// LogLine is one line a step (or the engine, for a step) wrote.
type LogLine struct {
	RunID string `json:"run_id"`
	// TraceID is the run's, to find the line's spans: set where lines are
	// shown (the engine's observers, logs, the API), not stored per line.
	TraceID string    `json:"trace_id,omitempty"`
	Step    string    `json:"step"`
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Stream  Stream    `json:"stream"`
	Text    string    `json:"text"`
}

// Error codes of the standard error payload.
const (
	CodeStepFailed     = "step_failed"
	CodeStepTimeout    = "step_timeout"
	CodeRunTimeout     = "run_timeout"
	CodeCancelled      = "cancelled"
	CodeSecretMissing  = "secret_missing"
	CodeTemplate       = "template_error"
	CodeInternal       = "internal_error"
	CodeInvalidRoutine = "invalid_routine"
	CodeOOM            = "oom"        // a run step went over its memory limit and was killed
	CodePidsLimit      = "pids_limit" // a run step could not fork: it hit its pids limit
	// CodeUnsafeValue is a rendered value that would change the structure
	// of where it lands instead of being data in it: a line break in a
	// header, a URL host that is not a name.
	CodeUnsafeValue = "unsafe_value"
	// Codes of the steps that talk to other systems.
	CodeHTTPStatus      = "http_status"      // the server answered with a failing status
	CodeAuth            = "auth"             // credentials refused (401, 403, a revoked token)
	CodeRateLimited     = "rate_limited"     // 429, or the service's own rate-limit answer
	CodeTimeout         = "timeout"          // no answer in time
	CodeInvalidResponse = "invalid_response" // an answer that could not be understood
)

// ErrorPayload is the standard error payload of a failed run or step.
type ErrorPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RunID     string `json:"run_id"`
	Step      string `json:"step,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	Retryable bool   `json:"retryable"`
	// RetryAfterMs is how long the other system asked to wait before the
	// next try (an HTTP Retry-After); the step's backoff waits at least that.
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
	StderrTail   string `json:"stderr_tail,omitempty"`
}

// Error makes the payload usable as an error.
func (e *ErrorPayload) Error() string { return e.Message }

// Sentinel errors shared by the store drivers and their callers.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// ErrUnsafeValue is a value that step kinds refuse because it would change
// the structure of where it lands (CodeUnsafeValue).
var ErrUnsafeValue = errors.New("unsafe value")

// AmbiguousIDError is a run id prefix that more than one run starts with.
// It wraps ErrConflict.
type AmbiguousIDError struct {
	Prefix string
	// IDs are the first runs it matches, in id order; More says there are
	// others.
	IDs  []string
	More bool
}

func (e *AmbiguousIDError) Error() string {
	more := ""
	if e.More {
		more = ", …"
	}
	return fmt.Sprintf("run id prefix %s matches more than one run: %s%s", e.Prefix, strings.Join(e.IDs, ", "), more)
}

// Unwrap makes the error an ErrConflict.
func (e *AmbiguousIDError) Unwrap() error { return ErrConflict }
