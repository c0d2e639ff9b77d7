package store

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// NewRun returns the run that RunCreate records for p, as a driver returns
// it: queued unless p says otherwise, with its own copies of p's input,
// tags and payload (nil when empty), QueuedAt in UTC to the microsecond,
// and the worker of a run created running by its executor, which is
// leased to it until QueuedAt + Lease. A trigger payload that is not JSON
// is an error.
func NewRun(p *RunCreateParams) (*routine.Run, error) {
	run := &routine.Run{
		ID:       p.ID,
		Routine:  p.Routine,
		Revision: p.Revision,
		Trigger:  routine.TriggerInfo{Kind: p.Trigger.Kind, Payload: slices.Clone(p.Trigger.Payload)},
		Input:    maps.Clone(p.Input),
		Tags:     slices.Clone(p.Tags),
		State:    p.State,
		QueuedAt: p.QueuedAt.UTC().Truncate(time.Microsecond),
		ReplayOf: p.ReplayOf,
		Requires: routine.NewPlacement(p.Requires.Region, p.Requires.Labels),

		TraceID:      p.TraceID,
		ParentSpanID: p.ParentSpanID,
	}
	if run.State == "" {
		run.State = routine.StateQueued
	}
	if run.State == routine.StateRunning && p.Worker != "" {
		run.Worker = p.Worker
	}
	if len(run.Trigger.Payload) == 0 {
		run.Trigger.Payload = nil
	} else if !json.Valid(run.Trigger.Payload) {
		return nil, errors.New("trigger payload is not valid JSON")
	}
	if len(run.Input) == 0 {
		run.Input = nil
	}
	if len(run.Tags) == 0 {
		run.Tags = nil
	}
	return run, nil
}
