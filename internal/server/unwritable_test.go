package server_test

import (
	"context"
	"encoding/json"
	"errors"
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

// refusingStore is a store whose new runs fail with err.
type refusingStore struct {
	store.Store
	err error
}

func (s refusingStore) RunCreate(context.Context, *store.RunCreateParams) (*routine.Run, error) {
	return nil, s.err
}

func (s refusingStore) RunCreateDeduped(context.Context, *store.RunCreateParams) (*routine.Run, bool, error) {
	return nil, false, s.err
}

// unwritableSetup serves a routine with a webhook, an event and the API
// from a store whose new runs fail with err, and whose Writability
// readiness reads.
func unwritableSetup(t *testing.T, err error, writes *store.Writability) *httptest.Server {
	t.Helper()
	st, openErr := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if openErr != nil {
		t.Fatal(openErr)
	}
	t.Cleanup(func() { st.Close() })
	refusing := refusingStore{Store: st, err: err}
	r := &routine.Routine{Name: "sink", Triggers: []routine.Trigger{
		{Webhook: &routine.WebhookTrigger{Path: "in"}},
		{Event: &routine.EventTrigger{Name: "disk.test"}},
	}}
	ts := httptest.NewServer(server.New(server.Config{
		Store: refusing, Queue: scheduler.NewQueue(refusing, nil, nil),
		Routines: scheduler.NewCatalog([]*routine.Routine{r}), Writes: writes,
	}))
	t.Cleanup(ts.Close)
	return ts
}

// call sends a request and returns its status, Retry-After and JSON error.
func call(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), v.Error
}

// New work that the store cannot record is refused 503, saying why, and
// where to the API's callers only; readiness says so too.
func TestStoreCannotWrite(t *testing.T) {
	t.Parallel()
	refusal := &store.UnwritableError{Cause: "disk full", Path: "/srv/p/.routines/state.db", Err: errors.New("database or disk is full (13)")}
	var writes store.Writability
	writes.Refused(refusal, time.Date(2026, 12, 4, 22, 55, 14, 0, time.UTC))
	ts := unwritableSetup(t, refusal, &writes)
	public := "the store cannot write: disk full; nothing was recorded: retry later"
	api := "the store cannot write: disk full at /srv/p/.routines/state.db; nothing was recorded: retry later"
	for _, c := range []struct{ method, path, want string }{
		{http.MethodPost, "/hooks/in", public},
		{http.MethodPost, "/v1/routines/sink/runs", api},
		{http.MethodPost, "/v1/events/disk.test", api},
		{http.MethodGet, "/readyz", "the store cannot write: disk full since 2026-12-04T22:55:14Z"},
	} {
		code, retry, msg := call(t, c.method, ts.URL+c.path)
		if code != http.StatusServiceUnavailable || retry != "30" || msg != c.want {
			t.Errorf("%s %s: %d, Retry-After %q, %q; want 503, 30, %q", c.method, c.path, code, retry, msg, c.want)
		}
	}
	writes.Wrote(time.Now())
	if code, _, msg := call(t, http.MethodGet, ts.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz once the store writes again: %d %q", code, msg)
	}
}

// Another failure of the store is still the daemon's own: 500.
func TestStoreFailureIs500(t *testing.T) {
	t.Parallel()
	ts := unwritableSetup(t, errors.New("database is locked"), nil)
	if code, retry, msg := call(t, http.MethodPost, ts.URL+"/hooks/in"); code != http.StatusInternalServerError || retry != "" || msg != "queue run of sink: database is locked" {
		t.Errorf("POST /hooks/in: %d, Retry-After %q, %q; want 500", code, retry, msg)
	}
}
