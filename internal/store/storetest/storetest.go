// Package storetest is the conformance suite of store.Store: Exercise runs
// the same tests against any driver, so that the SQLite and PostgreSQL
// stores behave alike. It speaks only through the interface and uses no
// driver's SQL, so a driver passes it or has a bug.
package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Exercise runs the conformance suite. open must return a fresh, empty
// store for the test it is given and close it when that test ends; the
// subtests run in parallel, each on its own store. Every driver is a
// store.Waker too.
func Exercise(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	t.Run("Run", func(t *testing.T) { t.Parallel(); exerciseRuns(t, open) })
	t.Run("RunFilters", func(t *testing.T) { t.Parallel(); exerciseRunFilters(t, open) })
	t.Run("Step", func(t *testing.T) { t.Parallel(); exerciseSteps(t, open) })
	t.Run("Log", func(t *testing.T) { t.Parallel(); exerciseLogs(t, open) })
	t.Run("Checkpoint", func(t *testing.T) { t.Parallel(); exerciseCheckpoint(t, open) })
	t.Run("ConcurrentWriters", func(t *testing.T) { t.Parallel(); exerciseConcurrency(t, open) })
	t.Run("ConcurrentFailuresFailAlone", func(t *testing.T) { t.Parallel(); exerciseFailAlone(t, open) })
	t.Run("State", func(t *testing.T) { t.Parallel(); exerciseState(t, open) })
	t.Run("Queue", func(t *testing.T) { t.Parallel(); exerciseQueue(t, open) })
	t.Run("Placement", func(t *testing.T) { t.Parallel(); exercisePlacement(t, open) })
	t.Run("GroupCeilings", func(t *testing.T) { t.Parallel(); exerciseGroupCeilings(t, open) })
	t.Run("FleetReserved", func(t *testing.T) { exerciseFleetReserved(t, open) })
	t.Run("Dedupe", func(t *testing.T) { t.Parallel(); exerciseDedupe(t, open) })
	t.Run("Owners", func(t *testing.T) { t.Parallel(); exerciseOwners(t, open) })
	t.Run("Secrets", func(t *testing.T) { t.Parallel(); exerciseSecrets(t, open) })
	t.Run("Revisions", func(t *testing.T) { t.Parallel(); exerciseRevisions(t, open) })
	t.Run("Wake", func(t *testing.T) { t.Parallel(); exerciseWake(t, open) })
	t.Run("Stats", func(t *testing.T) { t.Parallel(); exerciseStats(t, open) })
	t.Run("Outcomes", func(t *testing.T) { t.Parallel(); exerciseOutcomes(t, open) })
	t.Run("Cancel", func(t *testing.T) { t.Parallel(); exerciseCancel(t, open) })
	t.Run("Alerts", func(t *testing.T) { t.Parallel(); exerciseAlerts(t, open) })
	t.Run("Prune", func(t *testing.T) { t.Parallel(); exercisePrune(t, open) })
	t.Run("Teams", func(t *testing.T) { t.Parallel(); exerciseTeams(t, open) })
}

type testBundle struct {
	ctx context.Context
	s   store.Store
}

func setup(t *testing.T, open func(t *testing.T) store.Store) *testBundle {
	t.Helper()
	return &testBundle{ctx: t.Context(), s: open(t)}
}

// epoch has a sub-microsecond part that rounds and truncates to the same
// microsecond, and a zone other than UTC, so the tests check that a driver
// keeps microseconds and returns UTC without caring how it drops the rest.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535_897_123, time.FixedZone("CET", 3600))

// at returns epoch plus d.
func at(d time.Duration) time.Time { return epoch.Add(d) }

// stored returns t as a store gives it back.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func ptr[T any](v T) *T { return &v }

func newID() string { return ulid.Make().String() }

// createRun creates a run of routine "r" queued at epoch, after edit has
// changed the params.
func (b *testBundle) createRun(t *testing.T, edit func(p *store.RunCreateParams)) *routine.Run {
	t.Helper()
	p := &store.RunCreateParams{
		ID:       newID(),
		Routine:  "r",
		Revision: "rev1",
		Trigger:  routine.TriggerInfo{Kind: routine.TriggerManual},
		QueuedAt: epoch,
	}
	if edit != nil {
		edit(p)
	}
	run, err := b.s.RunCreate(b.ctx, p)
	if err != nil {
		t.Fatalf("RunCreate: %v", err)
	}
	return run
}

func (b *testBundle) getRun(t *testing.T, id string) *routine.Run {
	t.Helper()
	run, err := b.s.RunGet(b.ctx, id)
	if err != nil {
		t.Fatalf("RunGet(%s): %v", id, err)
	}
	return run
}

// checkRun fails unless got equals want once want's times are as a store
// keeps them; got's times must be in UTC and its trigger payload must be
// the same JSON value, whatever its spelling.
func checkRun(t *testing.T, got, want *routine.Run) {
	t.Helper()
	for _, tm := range []*time.Time{&got.QueuedAt, got.StartedAt, got.FinishedAt} {
		if tm != nil && tm.Location() != time.UTC {
			t.Errorf("run %s: time %v is not in UTC", got.ID, tm)
		}
	}
	g, w := *got, *want
	w.QueuedAt = stored(w.QueuedAt)
	w.StartedAt = storedPtr(w.StartedAt)
	w.FinishedAt = storedPtr(w.FinishedAt)
	g.Trigger.Payload = canonicalJSON(t, g.Trigger.Payload)
	w.Trigger.Payload = canonicalJSON(t, w.Trigger.Payload)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("run differs\n got: %s\nwant: %s", show(g), show(w))
	}
}

// checkStep is checkRun for step records.
func checkStep(t *testing.T, got, want *routine.StepRun) {
	t.Helper()
	for _, tm := range []*time.Time{got.StartedAt, got.FinishedAt} {
		if tm != nil && tm.Location() != time.UTC {
			t.Errorf("step %s: time %v is not in UTC", got.ID, tm)
		}
	}
	w := *want
	w.StartedAt = storedPtr(w.StartedAt)
	w.FinishedAt = storedPtr(w.FinishedAt)
	if !reflect.DeepEqual(*got, w) {
		t.Errorf("step differs\n got: %s (run %s)\nwant: %s (run %s)", show(got), got.RunID, show(w), w.RunID)
	}
}

func storedPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return ptr(stored(*t))
}

// canonicalJSON re-encodes a JSON value with sorted keys and no spaces, as
// a driver may store JSON as a value rather than as text.
func canonicalJSON(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	if raw == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("payload %q: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
