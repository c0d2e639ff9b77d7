package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// logsBundle is a server over a notifying store and one running run.
type logsBundle struct {
	st  *server.NotifyingStore
	srv *server.Server
	run *routine.Run
	seq int64
}

func setupLogs(t *testing.T) (*httptest.Server, *logsBundle) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := server.Notifying(db)
	srv := server.New(server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog(nil)})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	run, err := st.RunCreate(context.Background(), &store.RunCreateParams{
		ID: ulid.Make().String(), Routine: "r", State: routine.StateRunning, QueuedAt: time.Now(),
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts, &logsBundle{st: st, srv: srv, run: run}
}

// log stores lines of step a, as the engine does.
func (b *logsBundle) log(t *testing.T, texts ...string) {
	t.Helper()
	var lines []routine.LogLine
	for _, text := range texts {
		b.seq++
		lines = append(lines, routine.LogLine{RunID: b.run.ID, Step: "a", Seq: b.seq, Time: time.Now(), Stream: routine.StreamStdout, Text: text})
	}
	if err := b.st.Checkpoint(context.Background(), &store.CheckpointParams{RunID: b.run.ID, Logs: lines}); err != nil {
		t.Fatal(err)
	}
}

// finish ends step a and the run in state.
func (b *logsBundle) finish(t *testing.T, state routine.State) {
	t.Helper()
	now := time.Now()
	run := *b.run
	run.State, run.StartedAt, run.FinishedAt = state, &now, &now
	step := &routine.StepRun{RunID: b.run.ID, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: state, Attempts: 1, StartedAt: &now, FinishedAt: &now}
	if err := b.st.Checkpoint(context.Background(), &store.CheckpointParams{Run: &run, RunID: run.ID, Steps: []*routine.StepRun{step}}); err != nil {
		t.Fatal(err)
	}
}

// follow opens the event stream of the run and sends what it reads to a
// channel, closed at its end; the error of ReadEvents comes last.
func follow(t *testing.T, url string, header http.Header) (<-chan api.Event, <-chan error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header = header
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	events, done := make(chan api.Event, 100), make(chan error, 1)
	go func() {
		defer resp.Body.Close()
		done <- api.ReadEvents(resp.Body, func(e api.Event) error { events <- e; return nil })
		close(events)
	}()
	return events, done
}

func next(t *testing.T, events <-chan api.Event) api.Event {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10s")
	}
	return api.Event{}
}

func TestRunLogsStreamFollowsTheRunToItsEnd(t *testing.T) {
	t.Parallel()
	ts, b := setupLogs(t)
	b.log(t, "one")
	events, done := follow(t, ts.URL+"/v1/runs/"+b.run.ID[:10]+"/logs", http.Header{})
	if e := next(t, events); e.Line == nil || e.Line.Text != "one" || e.Line.Seq != 1 {
		t.Fatalf("first event %+v", e)
	}
	b.log(t, "two", "three")
	for _, want := range []string{"two", "three"} {
		if e := next(t, events); e.Line == nil || e.Line.Text != want {
			t.Fatalf("want line %q, got %+v", want, e)
		}
	}
	b.finish(t, routine.StateFailed)
	if e := next(t, events); e.Step == nil || e.Step.ID != "a" || e.Step.State != routine.StateFailed {
		t.Fatalf("want the end of step a, got %+v", e)
	}
	if e := next(t, events); e.End == nil || e.End.State != routine.StateFailed || len(e.End.Steps) != 1 {
		t.Fatalf("want the end of the run, got %+v", e)
	}
	if err := <-done; err != nil {
		t.Fatalf("the stream did not end cleanly after its end event: %v", err)
	}

	// A reconnecting EventSource gets the lines after the last it saw.
	events, done = follow(t, ts.URL+"/v1/runs/"+b.run.ID+"/logs", http.Header{"Last-Event-Id": {"2"}})
	if e := next(t, events); e.Line == nil || e.Line.Text != "three" {
		t.Fatalf("after seq 2: %+v", e)
	}
	if e := next(t, events); e.Step == nil {
		t.Fatalf("want the step's end, got %+v", e)
	}
	if e := next(t, events); e.End == nil {
		t.Fatalf("want the run's end, got %+v", e)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunLogsAsJSON(t *testing.T) {
	t.Parallel()
	ts, b := setupLogs(t)
	b.log(t, "one", "two")
	resp, err := http.Get(ts.URL + "/v1/runs/" + b.run.ID + "/logs?after=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []routine.LogLine
	if err := json.NewDecoder(resp.Body).Decode(&lines); err != nil || resp.StatusCode != 200 || len(lines) != 1 || lines[0].Text != "two" {
		t.Fatalf("%d %v %+v", resp.StatusCode, err, lines)
	}
	for url, code := range map[string]int{
		"/v1/runs/" + b.run.ID + "/logs?after=x": http.StatusBadRequest,
		"/v1/runs/7ZZZZZZZZZZZ/logs":             http.StatusNotFound,
	} {
		resp, err := http.Get(ts.URL + url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("%s: %d %s, want %d", url, resp.StatusCode, body, code)
		}
	}
}

// A write through the notifying store wakes the run's watchers at once:
// the stream need not wait for its poll.
func TestNotifyingStoreWakesWatchersOfTheRun(t *testing.T) {
	t.Parallel()
	_, b := setupLogs(t)
	written, stop := b.st.Watch(b.run.ID)
	defer stop()
	other, stopOther := b.st.Watch("01OTHERRUN")
	defer stopOther()
	b.log(t, "one")
	select {
	case <-written:
	default:
		t.Fatal("a checkpoint of the run did not wake its watcher")
	}
	select {
	case <-other:
		t.Fatal("a checkpoint of the run woke the watcher of another")
	default:
	}
	written, stop2 := b.st.Watch(b.run.ID)
	defer stop2()
	if _, err := b.st.RunCancelRequest(context.Background(), &store.RunCancelRequestParams{ID: b.run.ID, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-written:
	default:
		t.Fatal("a cancel request did not wake the run's watcher")
	}
	written, stop3 := b.st.Watch(b.run.ID)
	defer stop3()
	b.finish(t, routine.StateSucceeded)
	select {
	case <-written:
	default:
		t.Fatal("the run's end did not wake its watcher")
	}
}

func TestRunLogsStreamEndsWhenTheDaemonDrains(t *testing.T) {
	t.Parallel()
	ts, b := setupLogs(t)
	events, done := follow(t, ts.URL+"/v1/runs/"+b.run.ID+"/logs", http.Header{})
	b.log(t, "one")
	next(t, events)
	b.srv.Drain()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("a stream cut before the run's end: %v, want io.ErrUnexpectedEOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the drain")
	}
}

// racing is a store whose first LogList is followed by the engine's next
// write, as when a step's last lines, its end and the run's end commit
// while a follower reads.
type racing struct {
	store.Store
	once  sync.Once
	write func()
}

func (r *racing) LogList(ctx context.Context, p *store.LogListParams) ([]routine.LogLine, error) {
	lines, err := r.Store.LogList(ctx, p)
	r.once.Do(r.write)
	return lines, err
}

// A follower never shows a step's end before lines of the step committed
// with it: `invoke --wait` prints a step's output before its end, as
// run-once does.
func TestFollowShowsAStepsLinesBeforeItsEnd(t *testing.T) {
	t.Parallel()
	_, b := setupLogs(t)
	st := &racing{Store: b.st, write: func() {
		b.log(t, "late")
		b.finish(t, routine.StateFailed)
	}}
	var got []string
	err := server.Follow(t.Context(), st, &server.FollowParams{RunID: b.run.ID}, func(e api.Event) error {
		switch {
		case e.Line != nil:
			got = append(got, "line "+e.Line.Text)
		case e.Step != nil:
			got = append(got, "step "+e.Step.ID)
		case e.End != nil:
			got = append(got, "end")
		}
		return nil
	})
	if want := []string{"line late", "step a", "end"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("events %q, %v; want %q", got, err, want)
	}
}
