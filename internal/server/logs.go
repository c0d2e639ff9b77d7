package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// followPoll is how often a followed run is read again when no write woke
// its follower first. The writes of the daemon's own engine and scheduler
// wake it at once (Notifying); those of another process (a run-once in
// another terminal) are seen within followPoll.
const followPoll = 250 * time.Millisecond

// followBatch is how many log lines one read of a followed run takes, so
// a long log is sent in pieces rather than read into memory whole.
const followBatch = 1000

// sseHeartbeat is how often a silent event stream gets a comment, so
// that proxies keep it open and a client that went away is found.
const sseHeartbeat = 15 * time.Second

// FollowParams select what Follow reports.
type FollowParams struct {
	RunID    string // the full id
	Step     string // only this step's lines and end, when set
	AfterSeq int64  // only the lines after this one
}

// runWatcher is a store that tells when a run's records or lines are
// written (*NotifyingStore), so that Follow need not poll.
type runWatcher interface {
	Watch(id string) (written <-chan struct{}, stop func())
}

// Follow calls emit for the log lines of a run as they are stored, in
// order, for each step as it reaches a final state, and last for the run
// once it is final; then it returns nil. It returns early with ctx's error,
// or with emit's. A store that is a runWatcher wakes it when the run is
// written; it reads st again every followPoll besides.
//
// The run's state is read before its steps, and its steps before its
// lines: the engine writes a step's final record with or after the step's
// last lines, and the run's with or after its last steps', so a step or
// run read final has all its lines stored, and they are emitted before
// it, as they were printed.
func Follow(ctx context.Context, st store.Store, p *FollowParams, emit func(api.Event) error) error {
	watch, _ := st.(runWatcher)
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	after := p.AfterSeq
	told := map[[2]string]bool{} // the steps whose end was emitted, by phase and id
	for {
		written, stop := (<-chan struct{})(nil), func() {}
		if watch != nil {
			written, stop = watch.Watch(p.RunID)
		}
		run, err := st.RunGet(ctx, p.RunID)
		if err != nil {
			stop()
			return err
		}
		steps, err := st.StepList(ctx, p.RunID)
		if err != nil {
			stop()
			return err
		}
		if after, err = followLines(ctx, st, p, run.TraceID, after, emit); err != nil {
			stop()
			return err
		}
		for _, s := range steps {
			k := [2]string{string(s.Phase), s.ID}
			if !s.State.Final() || told[k] || p.Step != "" && s.ID != p.Step {
				continue
			}
			told[k] = true
			if err := emit(api.Event{Step: s}); err != nil {
				stop()
				return err
			}
		}
		if run.State.Final() {
			stop()
			d := api.NewRunDetail(run, steps)
			return emit(api.Event{End: &d})
		}
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-written:
		case <-tick.C:
		}
		stop()
	}
}

// followLines emits the stored lines after seq after, in batches, with
// the run's trace id, and returns the seq of the last one.
func followLines(ctx context.Context, st store.Store, p *FollowParams, traceID string, after int64, emit func(api.Event) error) (int64, error) {
	for {
		lines, err := st.LogList(ctx, &store.LogListParams{RunID: p.RunID, Step: p.Step, AfterSeq: after, Limit: followBatch})
		if err != nil {
			return after, err
		}
		for i := range lines {
			lines[i].TraceID = traceID
			if err := emit(api.Event{Line: &lines[i]}); err != nil {
				return after, err
			}
			after = lines[i].Seq
		}
		if len(lines) < followBatch {
			return after, nil
		}
	}
}

// NotifyingStore is a store that wakes the followers of a run (Follow)
// whenever the run's record, steps or lines are written through it: the
// daemon gives it to its engine and scheduler, and to the server.
type NotifyingStore struct {
	store.Store
	mu       sync.Mutex
	watchers map[string][]chan struct{}
}

// Notifying wraps st.
func Notifying(st store.Store) *NotifyingStore {
	return &NotifyingStore{Store: st, watchers: map[string][]chan struct{}{}}
}

// Watch returns a channel closed at the next write of run id through the
// store; stop releases it. Read the run after calling Watch: a write
// before it is not told.
func (n *NotifyingStore) Watch(id string) (written <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	n.mu.Lock()
	n.watchers[id] = append(n.watchers[id], ch)
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		list := n.watchers[id]
		for i, c := range list {
			if c == ch {
				n.watchers[id] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(n.watchers[id]) == 0 {
			delete(n.watchers, id)
		}
	}
}

// written wakes the watchers of run id.
func (n *NotifyingStore) written(id string) {
	n.mu.Lock()
	list := n.watchers[id]
	delete(n.watchers, id)
	n.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// Checkpoint implements store.Store and wakes the run's followers.
func (n *NotifyingStore) Checkpoint(ctx context.Context, p *store.CheckpointParams) error {
	err := n.Store.Checkpoint(ctx, p)
	id := p.RunID
	if p.Run != nil {
		id = p.Run.ID
	}
	n.written(id)
	return err
}

// LogAppend implements store.Store and wakes the followers of the runs
// whose lines it appends.
func (n *NotifyingStore) LogAppend(ctx context.Context, lines []routine.LogLine) error {
	err := n.Store.LogAppend(ctx, lines)
	for i, l := range lines {
		if i == 0 || l.RunID != lines[i-1].RunID {
			n.written(l.RunID)
		}
	}
	return err
}

// RunUpdate implements store.Store and wakes the run's followers.
func (n *NotifyingStore) RunUpdate(ctx context.Context, run *routine.Run) error {
	err := n.Store.RunUpdate(ctx, run)
	n.written(run.ID)
	return err
}

// runLogs answers GET /v1/runs/<id>/logs: to a client that accepts
// text/event-stream, the run's lines and step ends as they are stored and,
// last, the run (see Follow), as Server-Sent Events; to any other, the
// lines stored so far, as JSON. ?step= keeps one step's; ?after=SEQ, or
// the Last-Event-ID header of a reconnecting EventSource, the lines after
// SEQ.
func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) {
	run, ok := s.findRun(w, r)
	if !ok {
		return
	}
	p := &FollowParams{RunID: run.ID, Step: r.URL.Query().Get("step")}
	after := r.URL.Query().Get("after")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after = id
	}
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "after="+after+": want the seq of a log line, such as 42")
			return
		}
		p.AfterSeq = n
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		lines, err := s.cfg.Store.LogList(r.Context(), &store.LogListParams{RunID: run.ID, Step: p.Step, AfterSeq: p.AfterSeq})
		if err != nil {
			writeFailure(w, r, err)
			return
		}
		for i := range lines {
			lines[i].TraceID = run.TraceID
		}
		writeJSON(w, http.StatusOK, lines)
		return
	}
	s.streamRun(w, r, p)
}

// streamRun writes what Follow reports as Server-Sent Events: "log"
// events whose id is the line's seq, "step" events and one "end" event,
// each with the JSON of the line, step record or run. The stream ends
// after "end", when the client goes away, or when the daemon shuts down.
func (s *Server) streamRun(w http.ResponseWriter, r *http.Request, p *FollowParams) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	rc := http.NewResponseController(w)
	// The stream lasts as long as the run: no read deadline (the client
	// sends nothing more), and a write deadline per event instead of one
	// for the whole answer, so a client that stops reading is still cut off.
	_ = rc.SetReadDeadline(time.Time{})
	var mu sync.Mutex // the heartbeat and the events share the writer
	send := func(chunk string) error {
		mu.Lock()
		defer mu.Unlock()
		if d := s.cfg.Limits.WriteTimeout; d > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(d))
		}
		if _, err := fmt.Fprint(w, chunk); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if send(": following run "+p.RunID+"\n\n") != nil {
		return
	}
	var heartbeat sync.WaitGroup
	heartbeat.Go(func() {
		t := time.NewTicker(sseHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if send(": still here\n\n") != nil {
					cancel()
					return
				}
			}
		}
	})
	err := Follow(ctx, s.cfg.Store, p, func(e api.Event) error {
		name, id, v := "end", "", any(e.End)
		switch {
		case e.Line != nil:
			name, id, v = "log", "id: "+strconv.FormatInt(e.Line.Seq, 10)+"\n", e.Line
		case e.Step != nil:
			name, v = "step", e.Step
		}
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return send(id + "event: " + name + "\ndata: " + string(data) + "\n\n")
	})
	// Nothing may write to w once the handler returns.
	cancel()
	heartbeat.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("follow run", "run_id", p.RunID, "err", err)
	}
}

// RunCancelRequest implements store.Store and wakes the run's followers:
// a queued run ends with it.
func (n *NotifyingStore) RunCancelRequest(ctx context.Context, p *store.RunCancelRequestParams) (*routine.Run, error) {
	run, err := n.Store.RunCancelRequest(ctx, p)
	n.written(p.ID)
	return run, err
}

// Ping pings the store it wraps, when that store can (store.Pinger).
func (n *NotifyingStore) Ping(ctx context.Context) error {
	if p, ok := n.Store.(store.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
