package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// ended records a run's end in state, as the engine would.
func (d *daemon) ended(t *testing.T, id string, state routine.State) {
	t.Helper()
	run, err := d.st.RunGet(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	run.State, run.StartedAt, run.FinishedAt = state, &now, &now
	if err := d.st.RunUpdate(t.Context(), run); err != nil {
		t.Fatal(err)
	}
}

// wantStatus fails unless err is an *APIError of this status whose
// message holds msg.
func wantStatus(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != status || !strings.Contains(apiErr.Message, msg) {
		t.Fatalf("%s: %v, want %d with %q", what, err, status, msg)
	}
}

func ids(runs []*routine.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	none, err := c.ListRuns(t.Context(), api.RunQuery{})
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("no runs: %#v %v", none, err)
	}
	first, second := queuedRun(t, c), queuedRun(t, c)
	res, err := c.Emit(t.Context(), "cpu.alert", map[string]string{"host": "a"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	third := res.Runs[0].RunID
	d.ended(t, second, routine.StateFailed)
	for _, c2 := range []struct {
		q    api.RunQuery
		want []string
	}{
		{api.RunQuery{}, []string{third, second, first}},
		{api.RunQuery{Routine: "ping"}, []string{second, first}},
		{api.RunQuery{States: []routine.State{routine.StateFailed, routine.StateSucceeded}}, []string{second}},
		{api.RunQuery{States: []routine.State{routine.StateQueued}, Limit: 1}, []string{third}},
		{api.RunQuery{Routine: "nope"}, []string{}},
	} {
		runs, err := c.ListRuns(t.Context(), c2.q)
		if err != nil || !slices.Equal(ids(runs), c2.want) {
			t.Errorf("%+v: %v %v, want %v", c2.q, ids(runs), err, c2.want)
		}
	}
	// Empty input and tags are {} and [], as in `routines runs -o json`.
	runs, _ := c.ListRuns(t.Context(), api.RunQuery{Limit: 1})
	if runs[0].Input == nil || runs[0].Tags == nil {
		t.Fatalf("empty input or tags came back null: %+v", runs[0])
	}
	_, err = c.ListRuns(t.Context(), api.RunQuery{States: []routine.State{"weird"}})
	wantStatus(t, "unknown state", err, http.StatusBadRequest, "state=weird: want one of queued, running")
}

func TestGetLogs(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	id := queuedRun(t, c)
	now := time.Now()
	if err := d.st.LogAppend(t.Context(), []routine.LogLine{
		{RunID: id, Step: "a", Seq: 1, Time: now, Stream: routine.StreamStdout, Text: "one"},
		{RunID: id, Step: "b", Seq: 2, Time: now, Stream: routine.StreamStderr, Text: "two"},
	}); err != nil {
		t.Fatal(err)
	}
	all, err := c.GetLogs(t.Context(), id, "")
	if err != nil || len(all) != 2 || all[0].Text != "one" || all[1].Stream != routine.StreamStderr {
		t.Fatalf("all lines: %+v %v", all, err)
	}
	b, err := c.GetLogs(t.Context(), id[:12], "b")
	if err != nil || len(b) != 1 || b[0].Text != "two" {
		t.Fatalf("step b by a prefix: %+v %v", b, err)
	}
	_, err = c.GetLogs(t.Context(), "01NOSUCHRUN", "")
	wantStatus(t, "unknown run", err, http.StatusNotFound, "no run 01NOSUCHRUN")
}

func TestCancelRun(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	queued := queuedRun(t, c)
	run, err := c.CancelRun(t.Context(), queued, 0)
	if err != nil || run.State != routine.StateCancelled || run.Error == nil || run.Error.Code != routine.CodeCancelled || run.FinishedAt == nil ||
		run.Error.Message != "cancelled through the API before it started" {
		t.Fatalf("cancel a queued run: %+v %v", run, err)
	}
	if got, _ := d.st.RunGet(t.Context(), queued); got.State != routine.StateCancelled {
		t.Fatalf("stored: %s", got.State)
	}
	// Cancelling it again answers it as it is.
	if again, err := c.CancelRun(t.Context(), queued, 0); err != nil || again.State != routine.StateCancelled {
		t.Fatalf("cancel again: %+v %v", again, err)
	}
	// No worker claims a cancelled run.
	claimed, err := d.st.RunClaim(t.Context(), &store.RunClaimParams{Worker: "w1", Now: time.Now(), Lease: time.Minute, Limit: 10})
	if err != nil || len(claimed) != 0 {
		t.Fatalf("claimed after cancel: %d %v", len(claimed), err)
	}
	// A running run (of a worker that is not there to stop it) stays
	// running, its cancel requested for its worker to hear.
	running := queuedRun(t, c)
	if claimed, err := d.st.RunClaim(t.Context(), &store.RunClaimParams{Worker: "w1", Now: time.Now(), Lease: time.Minute}); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v", err)
	}
	for _, wait := range []time.Duration{0, 50 * time.Millisecond} {
		if run, err := c.CancelRun(t.Context(), running, wait); err != nil || run.State != routine.StateRunning {
			t.Fatalf("cancel a running run, waiting %s: %+v %v", wait, run, err)
		}
	}
	hb, err := d.st.RunHeartbeat(t.Context(), &store.RunHeartbeatParams{Worker: "w1", Now: time.Now(), Lease: time.Minute})
	if err != nil || !slices.Equal(hb.Cancel, []string{running}) {
		t.Fatalf("the worker's heartbeat: %+v %v; want %s to cancel", hb, err, running)
	}
	done := queuedRun(t, c)
	d.ended(t, done, routine.StateSucceeded)
	_, err = c.CancelRun(t.Context(), done, 0)
	wantStatus(t, "an ended run", err, http.StatusConflict, "already ended succeeded")
}

func TestRerunRun(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	payload := json.RawMessage(`{"host":"web1"}`)
	old, err := d.st.RunCreate(t.Context(), &store.RunCreateParams{ID: "01OLDRUN00000000000000000A", Routine: "ping", Revision: "old",
		Trigger: routine.TriggerInfo{Kind: "webhook", Payload: payload}, Input: map[string]string{"who": "Ada"}, State: routine.StateSucceeded, QueuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.RerunRun(t.Context(), old.ID[:10])
	if err != nil || id == "" {
		t.Fatalf("rerun: %q %v", id, err)
	}
	again, err := c.GetRun(t.Context(), id)
	if err != nil || again.ReplayOf != old.ID || again.Trigger.Kind != routine.TriggerRerun || string(again.Trigger.Payload) != string(payload) ||
		again.Input["who"] != "Ada" || again.State != routine.StateQueued {
		t.Fatalf("re-run: %+v %v", again.Run, err)
	}
	_, err = c.RerunRun(t.Context(), id)
	wantStatus(t, "rerun of a queued run", err, http.StatusConflict, "is queued: only a run that ended can be re-run")
}

func TestDeadLettersAndReplay(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	payload := json.RawMessage(`{"host":"web1"}`)
	dead, err := d.st.RunCreate(t.Context(), &store.RunCreateParams{ID: "01DEADRUN0000000000000000A", Routine: "ping", Revision: "old",
		Trigger: routine.TriggerInfo{Kind: "webhook", Payload: payload}, Input: map[string]string{"who": "Ada"}, State: routine.StateDead, QueuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	other := queuedRun(t, c)
	list, err := c.ListDead(t.Context(), api.RunQuery{})
	if err != nil || !slices.Equal(ids(list), []string{dead.ID}) {
		t.Fatalf("dlq: %v %v", ids(list), err)
	}
	if list, err := c.ListDead(t.Context(), api.RunQuery{Routine: "alert"}); err != nil || len(list) != 0 {
		t.Fatalf("dlq of alert: %v %v", ids(list), err)
	}
	_, err = c.ListDead(t.Context(), api.RunQuery{States: []routine.State{routine.StateFailed}})
	wantStatus(t, "dlq with a state", err, http.StatusBadRequest, "dead runs only")

	id, err := c.ReplayRun(t.Context(), dead.ID[:10])
	if err != nil || id == "" {
		t.Fatalf("replay: %q %v", id, err)
	}
	replayed, err := c.GetRun(t.Context(), id)
	if err != nil || replayed.ReplayOf != dead.ID || replayed.Trigger.Kind != routine.TriggerReplay || string(replayed.Trigger.Payload) != string(payload) ||
		replayed.Input["who"] != "Ada" || replayed.State != routine.StateQueued {
		t.Fatalf("replayed run: %+v %v", replayed.Run, err)
	}
	_, err = c.ReplayRun(t.Context(), other)
	wantStatus(t, "replay of a queued run", err, http.StatusConflict, "is queued, not dead")
}

func TestListRoutines(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	rs, err := c.ListRoutines(t.Context())
	if err != nil || len(rs) != 3 {
		t.Fatalf("routines: %+v %v", rs, err)
	}
	alert, ping, tick := rs[0], rs[1], rs[2]
	if alert.Name != "alert" || !slices.Equal(alert.Triggers, []string{"event cpu.alert"}) || alert.Next != nil {
		t.Errorf("alert: %+v", alert)
	}
	if ping.Name != "ping" || ping.Triggers == nil || len(ping.Triggers) != 0 {
		t.Errorf("ping: %+v", ping)
	}
	if tick.Name != "tick" || tick.Revision != "rev-tick" || !slices.Equal(tick.Triggers, []string{"every 1h"}) ||
		tick.Next == nil || tick.Next.Before(time.Now()) || tick.Next.After(time.Now().Add(time.Hour)) {
		t.Errorf("tick: %+v", tick)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	list, err := c.ListSecrets(t.Context())
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("no secrets: %#v %v", list, err)
	}
	for i, value := range []string{"first-value", "second-value"} {
		if v, err := c.SetSecret(t.Context(), "API_KEY", value); err != nil || v != i+1 {
			t.Fatalf("set %d: version %d %v", i+1, v, err)
		}
	}
	list, err = c.ListSecrets(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != "API_KEY" || list[0].Version != 2 || list[0].RotatedAt.Before(list[0].CreatedAt) {
		t.Fatalf("list: %+v %v", list, err)
	}
	_, err = c.SetSecret(t.Context(), "api-key", "x")
	wantStatus(t, "a bad name", err, http.StatusBadRequest, "must be upper-case letters")
	_, err = c.SetSecret(t.Context(), "EMPTY", "")
	wantStatus(t, "an empty value", err, http.StatusBadRequest, "secret EMPTY: the value is empty")
	_, err = c.SetSecret(t.Context(), "HUGE", strings.Repeat("x", 64<<10+1))
	wantStatus(t, "a value over 64 KiB", err, http.StatusBadRequest, "at most 65536")
	if err := c.DeleteSecret(t.Context(), "API_KEY"); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteSecret(t.Context(), "API_KEY")
	wantStatus(t, "delete again", err, http.StatusNotFound, "no secret API_KEY is stored")
}
