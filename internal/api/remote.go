package api

import (
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// RunQuery selects the runs of GET /v1/runs: the query parameters
// routine, state (repeatable), trigger, tag, since and limit. Zero values
// do not filter.
type RunQuery struct {
	Routine string
	States  []routine.State
	Trigger string
	Tag     string
	Since   time.Time // runs queued at or after it
	Limit   int       // the server's default (50) when 0
}

// The bounds of RunQuery.Limit.
const (
	DefaultRunLimit = 50
	MaxRunLimit     = 10000
)

// Queued is the answer of a request that queued a run: 202 {"run_id"}.
type Queued struct {
	RunID string `json:"run_id"`
}

// Routine is one routine a daemon or server serves, as GET /v1/routines
// lists it.
type Routine struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Revision is the content hash of the routine's file (or bundle).
	Revision string `json:"revision"`
	// Triggers are its triggers in a short phrase each, such as
	// `cron "0 9 * * *"` or "webhook POST /hooks/github"; [] when it has none.
	Triggers []string `json:"triggers"`
	// Next is when a cron or every trigger fires it next; absent when it
	// has none.
	Next *time.Time `json:"next,omitempty"`
}

// Secret is a secret of the builtin vault as GET /v1/secrets and
// `routines secrets list -o json` show it: never its value.
type Secret struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	RotatedAt time.Time `json:"rotated_at"`
}

// SecretValue is the body of PUT /v1/secrets/<name>. It is never
// written back, logged or echoed in an error.
type SecretValue struct {
	Value string `json:"value"`
}

// SecretVersion is the answer of PUT /v1/secrets/<name>: the version the
// value was stored as (1 for a new secret).
type SecretVersion struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}
