package events_test

import (
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/client"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/stepkind"
)

// serveProject runs the API of a daemon with token tok over the bundle's
// queue and records it as the running daemon of a new project, as
// `routines serve` does.
func serveProject(t *testing.T, b *testBundle, tok string) project.Project {
	t.Helper()
	srv := server.New(server.Config{Store: b.store, Queue: b.queue, Routines: scheduler.NewCatalog(listeners()), Token: tok})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	proj := project.Project{Dir: t.TempDir()}
	lock, err := proj.LockDaemon()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Release() })
	if err := lock.Publish(project.Daemon{Addr: strings.TrimPrefix(ts.URL, "http://"), PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	return proj
}

// TestRemoteToProjectDaemon is run-once's path: the project's daemon is
// found in serve.json and the event posted to its API, with the token.
func TestRemoteToProjectDaemon(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	proj := serveProject(t, b, "tok")
	pub := events.Remote{Project: proj}
	e := &stepkind.Emission{Event: "cpu.alert", Data: map[string]string{"host": "web1"}, Dedupe: "web 1", Token: "tok"}
	res, err := pub.Emit(t.Context(), e)
	if err != nil || len(res.Runs) != 2 {
		t.Fatalf("emit: %+v %v", res, err)
	}
	again, err := pub.Emit(t.Context(), e)
	if err != nil || !again.Runs[0].Deduplicated || again.Runs[0].RunID != res.Runs[0].RunID {
		t.Fatalf("the dedupe key did not reach the daemon: %+v, first %+v (%v)", again, res, err)
	}
	run, err := b.store.RunGet(t.Context(), res.Runs[0].RunID)
	if err != nil || string(run.Trigger.Payload) != `{"host":"web1"}` {
		t.Fatalf("run %+v %v", run, err)
	}
	e.Token = ""
	var apiErr *client.APIError
	if _, err := pub.Emit(t.Context(), e); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("without the token: %v", err)
	}
}

func TestRemoteWithoutDaemon(t *testing.T) {
	t.Parallel()
	pub := events.Remote{Project: project.Project{Dir: t.TempDir()}}
	_, err := pub.Emit(t.Context(), &stepkind.Emission{Event: "cpu.alert"})
	if !errors.Is(err, project.ErrNoDaemon) || !strings.Contains(err.Error(), "(or set the step's server)") {
		t.Fatalf("no daemon: %v", err)
	}
}

// TestRemoteRefusesBeforeSending: a bad name is refused here, not by the
// daemon: nothing is sent.
func TestRemoteRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	proj := serveProject(t, b, "")
	_, err := events.Remote{Project: proj}.Emit(t.Context(), &stepkind.Emission{Event: "../routines/alert/runs"})
	if err == nil || strings.Contains(err.Error(), "POST") || !strings.Contains(err.Error(), "must be 1 to 200") {
		t.Fatalf("bad name: %v", err)
	}
	if n := len(b.runs(t, "")); n != 0 {
		t.Fatalf("%d runs", n)
	}
}
