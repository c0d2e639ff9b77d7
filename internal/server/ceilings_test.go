package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// A namespace at its max_queued gets 429 with Retry-After and an error
// that names it and its ceiling, counted in /metrics; another namespace
// is not held back, and raising the ceiling through the API holds at
// once on the server that set it. The fields a PUT leaves out keep their
// value.
func TestNamespaceMaxQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.NamespacePut(ctx, &store.Namespace{Name: "team-a", MaxQueued: 1, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{} // namespace → the value of a token of it
	for i, ns := range []string{store.DefaultNamespace, "team-a", "team-b"} {
		tokens[ns] = server.NewToken()
		if _, err := st.TokenCreate(ctx, &store.TokenCreateParams{ID: fmt.Sprint("01TOKEN", i), Name: ns, Hash: server.HashToken(tokens[ns]),
			Role: store.RoleAdmin, Namespace: ns, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	srv := server.New(server.Config{
		Teams: true,
		Store: st,
		Queue: scheduler.NewQueue(st, nil, nil),
		Routines: scheduler.NewCatalog([]*routine.Routine{
			{Name: "a1", Namespace: "team-a"}, {Name: "a2", Namespace: "team-a"}, {Name: "b", Namespace: "team-b"},
		}),
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	call := func(ns, method, path, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tokens[ns])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	run := func(name string) (*http.Response, string) {
		t.Helper()
		return call("team-"+name[:1], http.MethodPost, "/v1/routines/"+name+"/runs", `{}`)
	}
	ops := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		return call(store.DefaultNamespace, method, path, body)
	}

	if resp, body := run("a1"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the first run of team-a: %d %s", resp.StatusCode, body)
	}
	resp, body := run("a2")
	var e struct{ Error string }
	_ = json.Unmarshal([]byte(body), &e)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(e.Error, "namespace team-a") || !strings.Contains(e.Error, "ceiling of 1 queued") {
		t.Fatalf("a run of team-a past its max_queued: %d, Retry-After %q, %s; want 429 naming team-a and 1",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for range 3 {
		if resp, body := run("b"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a run of team-b: %d %s", resp.StatusCode, body)
		}
	}
	if _, body := ops(http.MethodGet, "/metrics", ""); !strings.Contains(body, `reason="namespace_full"`) {
		t.Errorf("/metrics counts no namespace_full rejection:\n%s", body)
	}

	if resp, body := ops(http.MethodPut, "/v1/namespaces/team-a", `{"max_running": -1}`); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "want 0 or more") {
		t.Errorf("max_running -1: %d %s, want 400 saying it wants 0 or more", resp.StatusCode, body)
	}
	if resp, body := ops(http.MethodPut, "/v1/namespaces/team-a", `{"max_queued": 2}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("raise max_queued: %d %s", resp.StatusCode, body)
	}
	if resp, body := run("a2"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("under the raised ceiling: %d %s", resp.StatusCode, body)
	}
	resp, body = ops(http.MethodPut, "/v1/namespaces/team-a", `{"max_running": 3}`)
	var ns struct {
		MaxRunning int `json:"max_running"`
		MaxQueued  int `json:"max_queued"`
	}
	if err := json.Unmarshal([]byte(body), &ns); err != nil || resp.StatusCode != http.StatusOK || ns.MaxRunning != 3 || ns.MaxQueued != 2 {
		t.Fatalf("set max_running alone: %d %s; want max_queued kept at 2", resp.StatusCode, body)
	}
	if resp, _ := run("a1"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("at the raised ceiling: %d, want 429", resp.StatusCode)
	}
}
