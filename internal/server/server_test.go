package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

type testBundle struct {
	st  *sqlite.Store
	srv *server.Server
}

func setup(t *testing.T, secrets map[string]string) (*httptest.Server, *testBundle) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hook := &routine.Routine{Name: "hook", Triggers: []routine.Trigger{{Webhook: &routine.WebhookTrigger{Path: "hooks-here/", Secret: "{{HOOK_KEY}}"}}}}
	srv := server.New(server.Config{
		Store:    st,
		Queue:    scheduler.NewQueue(st, nil, nil),
		Routines: scheduler.NewCatalog([]*routine.Routine{hook}),
		Secret: func(_ context.Context, _ *routine.Routine, ref routine.SecretRef) (string, error) {
			v, ok := secrets[ref.Name]
			if !ok {
				return "", fmt.Errorf("secret %s is not set", ref.Name)
			}
			return v, nil
		},
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, &testBundle{st: st, srv: srv}
}

func TestDrainAnswers503(t *testing.T) {
	t.Parallel()
	ts, b := setup(t, map[string]string{"HOOK_KEY": "k"})
	b.srv.Drain()
	resp, err := http.Post(ts.URL+"/v1/routines/hook/runs", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("draining: %d", resp.StatusCode)
	}
}

func TestUnknownEndpointIsJSON(t *testing.T) {
	t.Parallel()
	ts, _ := setup(t, nil)
	resp, err := http.Get(ts.URL + "/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 404 || e["error"] == "" {
		t.Fatalf("%d %v %v", resp.StatusCode, e, err)
	}
}

// The backlog bound is kept from an estimate (the last count plus the runs
// queued since); a 429 always rests on a fresh count.
func TestMaxQueuedEstimate(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := server.New(server.Config{
		Store:     st,
		Queue:     scheduler.NewQueue(st, nil, nil),
		Routines:  scheduler.NewCatalog([]*routine.Routine{{Name: "r"}}),
		MaxQueued: 2,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	post := func() (int, string) {
		t.Helper()
		resp, err := http.Post(ts.URL+"/v1/routines/r/runs", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v["run_id"]
	}
	var ids []string
	for range 2 {
		code, id := post()
		if code != http.StatusAccepted {
			t.Fatalf("under the bound: %d", code)
		}
		ids = append(ids, id)
	}
	if code, _ := post(); code != http.StatusTooManyRequests {
		t.Fatalf("at the bound: %d", code)
	}
	// A run leaves the queue: the estimate is high, the recount sees room.
	run, err := st.RunGet(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	run.State = routine.StateSucceeded
	if err := st.RunUpdate(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(); code != http.StatusAccepted {
		t.Fatalf("after a run left the queue: %d", code)
	}
	if code, _ := post(); code != http.StatusTooManyRequests {
		t.Fatalf("at the bound again: %d", code)
	}
}
