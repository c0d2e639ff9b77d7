package server_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// /healthz says the process serves; /readyz that it takes work: not
// while its store does not answer, not once it drains. Neither needs the
// token: probes carry none.
func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: server.Notifying(st), Queue: scheduler.NewQueue(st, nil, nil), Routines: scheduler.NewCatalog(nil), Token: "t0ken"})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if h, r := status("/healthz"), status("/readyz"); h != 200 || r != 200 {
		t.Fatalf("healthz %d, readyz %d; want 200 and 200", h, r)
	}
	st.Close() // the database is gone
	if h, r := status("/healthz"), status("/readyz"); h != 200 || r != http.StatusServiceUnavailable {
		t.Fatalf("store closed: healthz %d, readyz %d; want 200 and 503", h, r)
	}
	srv.Drain()
	if r := status("/readyz"); r != http.StatusServiceUnavailable {
		t.Fatalf("draining: readyz %d, want 503", r)
	}
}
