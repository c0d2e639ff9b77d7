package metrics

import (
	"github.com/routines-dev/routines/internal/routine"
)

// The methods below make *Metrics the engine's Observer (engine.Config):
// each is a few atomic adds on the run's goroutine, nothing that waits.

// RunStarted counts a run starting its first attempt, and how long it
// waited in the queue, labelled with the region of the worker that
// claimed it: the wait an autoscaler of that region's workers watches. A
// run resumed (after a retry's wait in the queue, a restart, a takeover)
// started before and is not counted again.
func (m *Metrics) RunStarted(run *routine.Run) {
	if run.Attempt != 1 {
		return
	}
	m.runsStarted.WithLabelValues(run.Routine).Inc()
	if run.Trigger.Kind != routine.TriggerRoutine && run.StartedAt != nil {
		m.queueWait.WithLabelValues(run.Routine, run.Region).Observe(max(0, run.StartedAt.Sub(run.QueuedAt).Seconds()))
	}
}

// StepStarted implements the engine's Observer; a step is measured when
// it finishes.
func (m *Metrics) StepStarted(*routine.Run, *routine.StepRun) {}

// StepFinished observes the duration of a step that ran, by its final
// state.
func (m *Metrics) StepFinished(run *routine.Run, step *routine.StepRun) {
	if step.State == routine.StateSkipped || step.StartedAt == nil || step.FinishedAt == nil {
		return
	}
	m.stepDur.WithLabelValues(run.Routine, step.ID, string(step.Phase), string(step.State)).
		Observe(max(0, step.FinishedAt.Sub(*step.StartedAt).Seconds()))
}

// Log implements the engine's Observer; log lines are not counted.
func (m *Metrics) Log(routine.LogLine) {}

// RunFinished counts a run that ended, by its state, and observes its
// duration.
func (m *Metrics) RunFinished(run *routine.Run) {
	m.RunEnded(run)
	if run.StartedAt != nil && run.FinishedAt != nil {
		m.runDuration.WithLabelValues(run.Routine).Observe(max(0, run.FinishedAt.Sub(*run.StartedAt).Seconds()))
	}
}

// RunEnded counts a run that ended without executing, by its state: the
// scheduler failed it (its routine is gone, the engine panicked) or
// cancelled it. Its duration means nothing and is not observed.
func (m *Metrics) RunEnded(run *routine.Run) {
	m.runsEnded.WithLabelValues(run.Routine, string(run.State)).Inc()
}
