package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// GET /v1/runs/<id> of a queued run of a deployment says why it waits
// when no live worker may take it, and nothing once one may; a local
// daemon, whose one worker runs everything, never says it.
func TestQueuedRunSaysWhyItWaits(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	catalog := scheduler.NewCatalog([]*routine.Routine{
		{Name: "render", Region: "eu-west", Labels: []string{"gpu"}},
		{Name: "ping"},
	})
	serve := func(fleet bool) *remoteBundle {
		ts := httptest.NewServer(server.New(server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil),
			Token: remoteToken, Routines: catalog, Fleet: fleet}))
		t.Cleanup(ts.Close)
		return &remoteBundle{url: ts.URL}
	}
	fleet, local := serve(true), serve(false)
	queue := func(name string) string {
		t.Helper()
		code, body := fleet.call(t, http.MethodPost, "/v1/routines/"+name+"/runs", "", true)
		var q api.Queued
		if code != http.StatusAccepted || json.Unmarshal([]byte(body), &q) != nil {
			t.Fatalf("POST %s: %d %s", name, code, body)
		}
		return q.RunID
	}
	get := func(b *remoteBundle, id string) api.RunDetail {
		t.Helper()
		code, body := b.call(t, http.MethodGet, "/v1/runs/"+id, "", true)
		var d api.RunDetail
		if code != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil {
			t.Fatalf("GET run %s: %d %s", id, code, body)
		}
		return d
	}
	waiting := func(b *remoteBundle, id string) string { t.Helper(); return get(b, id).Waiting }
	beat := func(id string, pl routine.Placement) {
		t.Helper()
		if err := st.WorkerBeat(t.Context(), &store.WorkerBeatParams{ID: id, Placement: pl, Slots: 4, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	render, ping := queue("render"), queue("ping")
	if got := get(fleet, render).Requires; got.Region != "eu-west" || len(got.Labels) != 1 || got.Labels[0] != "gpu" {
		t.Fatalf("run of render requires %v, want region eu-west, label gpu", got)
	}

	for _, tc := range []struct {
		run, want string
	}{
		{ping, "no live worker: start one with: routines worker --db URL"},
		{render, "no live worker, and it needs one of region eu-west, label gpu: start one with: routines worker --db URL --region eu-west --labels gpu"},
	} {
		if got := waiting(fleet, tc.run); got != tc.want {
			t.Errorf("with no worker: waiting %q, want %q", got, tc.want)
		}
		if got := waiting(local, tc.run); got != "" {
			t.Errorf("a local daemon: waiting %q, want none", got)
		}
	}

	beat("w1", routine.Placement{Region: "us-east", Labels: []string{"gpu"}})
	beat("w2", routine.Placement{})
	want := "no live worker has region eu-west, label gpu (live: w1 (region us-east, label gpu), w2 (no region or labels)): " +
		"start one with: routines worker --db URL --region eu-west --labels gpu"
	if got := waiting(fleet, render); got != want {
		t.Errorf("with workers elsewhere: waiting\n%q, want\n%q", got, want)
	}
	if got := waiting(fleet, ping); got != "" {
		t.Errorf("a run any worker may take: waiting %q, want none", got)
	}

	// A worker of the region with more labels than asked for.
	beat("w3", routine.Placement{Region: "eu-west", Labels: []string{"gpu", "ssd"}})
	if got := waiting(fleet, render); got != "" {
		t.Errorf("with a worker that may take it: waiting %q, want none", got)
	}
}
