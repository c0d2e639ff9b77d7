// Package retention owns how long a local project keeps what its runs
// leave: the policy (retention: in routines.project.yaml, with its
// defaults), the Pruner that applies it to a store and to the runs'
// folders in short batches, and the daemon's Service that prunes
// continuously. The store deletes rows (store.Pruner); this package
// decides which, and deletes the files.
package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Policy is how long each kind of record is kept; a zero Age is forever.
type Policy struct {
	Runs      RunsPolicy `yaml:"runs" json:"runs"`
	Logs      AgePolicy  `yaml:"logs" json:"logs"`
	Artifacts AgePolicy  `yaml:"artifacts" json:"artifacts"`
	Audit     AgePolicy  `yaml:"audit" json:"audit"`
}

// RunsPolicy bounds the runs kept: by the age of their end, and by count
// per routine. A run goes with its step records, log lines, tags and
// artifacts; the rollups that stats and the dashboard read keep counting
// it. Runs that are not final, and dead runs not replayed, are kept.
type RunsPolicy struct {
	MaxAge   Age   `yaml:"max_age" json:"max_age"`
	MaxCount Count `yaml:"max_count" json:"max_count,omitempty"`
}

// AgePolicy bounds the age of records of one kind.
type AgePolicy struct {
	MaxAge Age `yaml:"max_age" json:"max_age"`
}

// Default is the policy of a project whose file says nothing: runs and
// their artifacts 30 days, log lines 7 days, the audit trail a year.
func Default() Policy {
	return Policy{
		Runs:      RunsPolicy{MaxAge: Age(30 * day)},
		Logs:      AgePolicy{MaxAge: Age(7 * day)},
		Artifacts: AgePolicy{MaxAge: Age(30 * day)},
		Audit:     AgePolicy{MaxAge: Age(365 * day)},
	}
}

const day = 24 * time.Hour

// The rollups (per minute and per hour of the runs' ends, which stats,
// the dashboard, alerts and budgets read) outlive the runs. Minutes are
// kept a little longer than the widest range the dashboard shows (30
// days), whose oldest edge is read from minute rows; hours for more than
// a year.
const (
	RollupMinutesAge = 31 * day
	RollupHoursAge   = 400 * day
)

// MinAge is the shortest age a policy accepts: a run's record must
// outlive whoever waits for its end (a sub-run's caller, a `?wait`
// request), and a pass of pruning runs at most every few seconds.
const MinAge = time.Minute

// Age is a max_age: a duration such as 30d or 12h, of MinAge or more, or
// "forever" (zero).
type Age time.Duration

// UnmarshalText reads "forever" or a duration (routine.Duration).
func (a *Age) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "forever" {
		*a = 0
		return nil
	}
	var d routine.Duration
	if err := d.UnmarshalText(b); err != nil {
		return fmt.Errorf("%w, or forever", err)
	}
	if time.Duration(d) < MinAge {
		return fmt.Errorf("%s is too short: write %s or more, such as 7d, or forever", s, routine.Duration(MinAge))
	}
	*a = Age(d)
	return nil
}

// MarshalText writes the age as a routine file would, or "forever".
func (a Age) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// String writes the age as a routine file would ("30d"), or "forever".
func (a Age) String() string {
	if a == 0 {
		return "forever"
	}
	return routine.Duration(a).String()
}

// Count is a max_count: a number of runs, 1 or more; zero is no bound.
type Count int

// UnmarshalText reads a whole number of 1 or more.
func (c *Count) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a number of runs: write a whole number, 1 or more, such as 100000", s)
	}
	*c = Count(n)
	return nil
}

// Cutoffs are the instants before which each kind goes, at now.
type Cutoffs struct {
	Runs, Logs, Artifacts, Audit time.Time // zero: kept forever
	RollupMinutes, RollupHours   time.Time
}

// At returns the cutoffs of the policy at now.
func (p Policy) At(now time.Time) Cutoffs {
	before := func(a Age) time.Time {
		if a == 0 {
			return time.Time{}
		}
		return now.Add(-time.Duration(a))
	}
	return Cutoffs{
		Runs: before(p.Runs.MaxAge), Logs: before(p.Logs.MaxAge), Artifacts: before(p.Artifacts.MaxAge),
		Audit: before(p.Audit.MaxAge), RollupMinutes: now.Add(-RollupMinutesAge), RollupHours: now.Add(-RollupHoursAge),
	}
}

// shortest is the shortest age of the policy, 0 when every kind is kept
// forever.
func (p Policy) shortest() time.Duration {
	var m time.Duration
	for _, a := range []Age{p.Runs.MaxAge, p.Logs.MaxAge, p.Artifacts.MaxAge, p.Audit.MaxAge} {
		if a > 0 && (m == 0 || time.Duration(a) < m) {
			m = time.Duration(a)
		}
	}
	return m
}
