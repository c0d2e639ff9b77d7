package engine

import (
	"maps"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// gbSeconds is the GB-seconds of an attempt that peaked at maxRSSKB KiB
// of memory for wall.
func gbSeconds(maxRSSKB int64, wall time.Duration) float64 {
	return float64(maxRSSKB) * 1024 / routine.BytesPerGB * wall.Seconds()
}

// addUsage adds u to the usage of the step record rec (when not nil) and
// of the run. The sums are made afresh rather than in place: the
// checkpointer holds shallow copies of both records, whose Tokens maps it
// may be encoding meanwhile.
func (x *runExec) addUsage(rec *routine.StepRun, u routine.Usage) {
	if u.IsZero() {
		return
	}
	if rec != nil {
		rec.Usage = plus(rec.Usage, u)
	}
	x.mu.Lock()
	x.run.Usage = plus(x.run.Usage, u)
	x.mu.Unlock()
}

// plus returns a + b, sharing no map with a.
func plus(a, b routine.Usage) routine.Usage {
	sum := a
	sum.Tokens = maps.Clone(a.Tokens)
	sum.Add(b)
	return sum
}

// usageBefore returns the usage that earlier attempts of the run recorded
// for a step that runs again: a step's record counts all its attempts.
func (x *runExec) usageBefore(phase routine.Phase, id string) routine.Usage {
	if x.resume == nil {
		return routine.Usage{}
	}
	return x.resume.usage[stepKey{phase, id}]
}
