package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

const token = "tok-3c9a"

// daemon is a real server on loopback, with the query of the last
// request it was sent.
type daemon struct {
	url      string
	st       *server.NotifyingStore
	srv      *server.Server
	problems *server.Problems
	mu       sync.Mutex
	query    string
}

func (d *daemon) lastQuery() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.query
}

// start starts a daemon and returns it with a client holding its token.
func start(t *testing.T) (*daemon, *client.Client) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &daemon{st: server.Notifying(db), problems: server.NewProblems(nil)}
	ping := &routine.Routine{Name: "ping", Inputs: map[string]routine.Input{"who": {}}}
	alert := &routine.Routine{Name: "alert", Triggers: []routine.Trigger{{Event: &routine.EventTrigger{Name: "cpu.alert", Dedupe: "{{ event.host }}"}}}}
	tick := &routine.Routine{Name: "tick", Revision: "rev-tick", Triggers: []routine.Trigger{{Every: routine.Duration(time.Hour)}}}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	d.srv = server.New(server.Config{Store: d.st, Queue: scheduler.NewQueue(d.st, nil, nil), Token: token, Problems: d.problems,
		Routines: scheduler.NewCatalog([]*routine.Routine{ping, alert, tick}),
		Vault:    secrets.NewBuiltin(db, secrets.KeySource{Env: key.String()})})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.query = r.URL.RawQuery
		d.mu.Unlock()
		d.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	d.url = ts.URL
	return d, client.New(d.url, token)
}

// queuedRun fires ping and returns the id of its run.
func queuedRun(t *testing.T, c *client.Client) string {
	t.Helper()
	id, err := c.CreateRun(t.Context(), "ping", nil)
	if err != nil || id == "" {
		t.Fatalf("CreateRun: %q %v", id, err)
	}
	return id
}

func TestCreateRunAndGetRun(t *testing.T) {
	t.Parallel()
	d, _ := start(t)
	c := client.New(d.url+"/", token)
	id, err := c.CreateRun(t.Context(), "ping", map[string]string{"who": "Ada"})
	if err != nil || id == "" {
		t.Fatalf("CreateRun: %q %v", id, err)
	}
	run, err := c.GetRun(t.Context(), id[:10])
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != id || run.Routine != "ping" || run.Input["who"] != "Ada" || run.State != routine.StateQueued || run.Trigger.Kind != server.TriggerAPI {
		t.Fatalf("GetRun: %+v", run.Run)
	}
	queuedRun(t, c) // without input
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	_, err := c.CreateRun(t.Context(), "nope", nil)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Message != `no routine "nope" in this project` {
		t.Fatalf("unknown routine: %#v", err)
	}
	if want := `POST /v1/routines/nope/runs: 404 Not Found: no routine "nope" in this project`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	_, err = c.GetRun(t.Context(), "01NOSUCHRUN")
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Path != "/v1/runs/01NOSUCHRUN" {
		t.Fatalf("unknown run: %#v", err)
	}
}

func TestUnauthorizedSaysToPassAToken(t *testing.T) {
	t.Parallel()
	d, _ := start(t)
	for _, tok := range []string{"", "wrong"} {
		_, err := client.New(d.url, tok).Status(t.Context())
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "pass the token") ||
			!strings.Contains(err.Error(), "$ROUTINES_TOKEN") {
			t.Fatalf("token %q: %v", tok, err)
		}
	}
}

func TestUnreachableNamesTheURL(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, err = client.New(url, "").Status(t.Context())
	var unreachable *client.UnreachableError
	if !errors.As(err, &unreachable) || unreachable.URL != url || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), url) {
		t.Fatalf("refused: %#v (%v)", err, err)
	}
}

func TestEmit(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	first, err := c.Emit(t.Context(), "cpu.alert", map[string]any{"host": "web1", "cpu": 91}, "", 0)
	if err != nil || len(first.Runs) != 1 || first.Runs[0].Routine != "alert" || first.Runs[0].Deduplicated {
		t.Fatalf("first: %+v %v", first, err)
	}
	if q := d.lastQuery(); q != "" {
		t.Fatalf("query %q, want none", q)
	}
	again, err := c.Emit(t.Context(), "cpu.alert", map[string]any{"host": "web1"}, "", 0)
	if err != nil || len(again.Runs) != 1 || !again.Runs[0].Deduplicated || again.Runs[0].RunID != first.Runs[0].RunID {
		t.Fatalf("duplicate: %+v %v", again, err)
	}
	keyed, err := c.Emit(t.Context(), "cpu.alert", nil, "web 2", 90*time.Second)
	if err != nil || len(keyed.Runs) != 1 || keyed.Runs[0].Deduplicated {
		t.Fatalf("dedupe key: %+v %v", keyed, err)
	}
	if q := d.lastQuery(); q != "dedupe=web+2&window=1m30s" {
		t.Fatalf("query %q", q)
	}
	run, err := c.GetRun(t.Context(), keyed.Runs[0].RunID)
	if err != nil || string(run.Trigger.Payload) != "{}" {
		t.Fatalf("nil data: %+v %v", run, err)
	}
	none, err := c.Emit(t.Context(), "nobody.listens", nil, "", 0)
	if err != nil || none.Event != "nobody.listens" || len(none.Runs) != 0 {
		t.Fatalf("unheard: %+v %v", none, err)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	st, err := c.Status(t.Context())
	if err != nil || st.Problems == nil || len(st.Problems) != 0 {
		t.Fatalf("no problems: %+v %v", st, err)
	}
	d.problems.Report("alert", "webhook /hooks/x", "secret X is not set")
	st, err = c.Status(t.Context())
	if err != nil || len(st.Problems) != 1 || st.Problems[0].Message != "secret X is not set" || st.Problems[0].Count != 1 {
		t.Fatalf("a problem: %+v %v", st, err)
	}
}

func TestFollowLogs(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	id := queuedRun(t, c)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		now := time.Now()
		line := routine.LogLine{RunID: id, Step: "a", Seq: 1, Time: now, Stream: routine.StreamStdout, Text: "hello"}
		step := &routine.StepRun{RunID: id, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded, Attempts: 1, StartedAt: &now, FinishedAt: &now}
		run, _ := d.st.RunGet(context.Background(), id)
		run.State, run.StartedAt, run.FinishedAt = routine.StateSucceeded, &now, &now
		if err := d.st.Checkpoint(context.Background(), &store.CheckpointParams{RunID: id, Logs: []routine.LogLine{line}}); err != nil {
			t.Error(err)
		}
		if err := d.st.Checkpoint(context.Background(), &store.CheckpointParams{Run: run, RunID: id, Steps: []*routine.StepRun{step}}); err != nil {
			t.Error(err)
		}
	}()
	var got []string
	err := c.FollowLogs(t.Context(), id, "a", func(e api.Event) error {
		switch {
		case e.Line != nil:
			got = append(got, "line "+e.Line.Text)
		case e.Step != nil:
			got = append(got, "step "+e.Step.ID+" "+string(e.Step.State))
		case e.End != nil:
			got = append(got, "end "+string(e.End.State))
		}
		return nil
	})
	<-wrote
	if err != nil || strings.Join(got, ", ") != "line hello, step a succeeded, end succeeded" {
		t.Fatalf("followed %q, %v", got, err)
	}
	// fn's error ends the follow.
	stop := errors.New("stop")
	if err := c.FollowLogs(t.Context(), id, "", func(api.Event) error { return stop }); err != stop {
		t.Fatalf("fn's error: %v", err)
	}
}

func TestFollowLogsStreamEnded(t *testing.T) {
	t.Parallel()
	d, c := start(t)
	id := queuedRun(t, c)
	if err := d.st.Checkpoint(t.Context(), &store.CheckpointParams{RunID: id, Logs: []routine.LogLine{
		{RunID: id, Step: "a", Seq: 1, Time: time.Now(), Stream: routine.StreamStdout, Text: "working"}}}); err != nil {
		t.Fatal(err)
	}
	// The run never ends: the daemon shutting down ends the stream.
	err := c.FollowLogs(t.Context(), id, "", func(e api.Event) error {
		if e.Line != nil {
			d.srv.Drain()
		}
		return nil
	})
	var ended *client.StreamEndedError
	if !errors.As(err, &ended) || ended.RunID != id || !strings.Contains(err.Error(), d.url) || !strings.Contains(err.Error(), id) {
		t.Fatalf("stream ended: %v", err)
	}
}
