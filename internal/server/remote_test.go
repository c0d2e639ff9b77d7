package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"filippo.io/age"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

const remoteToken = "tok-remote-51f0"

// remoteBundle is a server with a token, a vault unless asked otherwise,
// and its log.
type remoteBundle struct {
	url string
	log *lockedBuffer
	st  *sqlite.Store
}

func setupRemote(t *testing.T, withVault bool) *remoteBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &remoteBundle{log: &lockedBuffer{}, st: st}
	cfg := server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil), Token: remoteToken,
		Routines: scheduler.NewCatalog([]*routine.Routine{{Name: "r"}}),
		Logger:   slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if withVault {
		key, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Vault = secrets.NewBuiltin(st, secrets.KeySource{Env: key.String()})
	}
	ts := httptest.NewServer(server.New(cfg))
	t.Cleanup(ts.Close)
	b.url = ts.URL
	return b
}

// call sends a request with the token (unless token is false) and
// returns the status and body.
func (b *remoteBundle) call(t *testing.T, method, path, body string, token bool) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token {
		req.Header.Set("Authorization", "Bearer "+remoteToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// errorOf returns the "error" of a JSON error body, failing the test when
// the body is not one.
func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error: %q", body)
	}
	return e.Error
}

func TestRemoteEndpointsNeedTheToken(t *testing.T) {
	t.Parallel()
	b := setupRemote(t, true)
	for _, ep := range [][2]string{
		{"GET", "/v1/runs"}, {"POST", "/v1/runs/01ABCDEF/cancel"}, {"GET", "/v1/routines"}, {"GET", "/v1/dlq"},
		{"POST", "/v1/dlq/01ABCDEF/replay"}, {"GET", "/v1/secrets"}, {"PUT", "/v1/secrets/A"}, {"DELETE", "/v1/secrets/A"},
		{"GET", "/v1/alerts"},
	} {
		code, body := b.call(t, ep[0], ep[1], `{"value":"v"}`, false)
		if code != http.StatusUnauthorized || !strings.Contains(errorOf(t, body), "API token") {
			t.Errorf("%s %s without the token: %d %s", ep[0], ep[1], code, body)
		}
	}
}

func TestListRunsRefusesBadFilters(t *testing.T) {
	t.Parallel()
	b := setupRemote(t, false)
	for q, want := range map[string]string{
		"limit=0":                            "limit=0: want a number from 1 to 10000",
		"limit=10001":                        "limit=10001: want a number from 1 to 10000",
		"limit=ten":                          "limit=ten: want a number",
		"state=queued,sleeping":              "state=sleeping: want one of queued, running, succeeded, failed, dead, cancelled",
		"since=yesterday":                    "since=yesterday: want a time such as 2026-12-04T09:00:00Z, or a duration ago such as 90m, 24h or 7d",
		"until=2026-12-04":                   "until=2026-12-04: want a time",
		"since=-1h":                          "since=-1h: want a time",
		"id=01J%20":                          "id=01J : want the start of a run id",
		"id=01JL":                            "id=01JL: want the start of a run id",
		"before=01JEB2Y5T0Z6Q9K3M8N4R7V2WX0": "before=01JEB2Y5T0Z6Q9K3M8N4R7V2WX0: want the id of the last run of the page before",
	} {
		code, body := b.call(t, "GET", "/v1/runs?"+q, "", true)
		if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), want) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	for _, q := range []string{"state=queued,running&state=dead&limit=10000",
		"trigger=cron&tag=prod&since=24h&until=2026-12-04T09:00:00%2B01:00&id=01jeb&before=01JEB2Y5T0Z6Q9K3M8N4R7V2WX"} {
		if code, body := b.call(t, "GET", "/v1/runs?"+q, "", true); code != http.StatusOK || body != "[]\n" {
			t.Errorf("valid filters %s: %d %q", q, code, body)
		}
	}
	if code, body := b.call(t, "GET", "/v1/dlq?state=dead", "", true); code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), "dead runs only") {
		t.Errorf("dlq with a state: %d %s", code, body)
	}
	if code, body := b.call(t, "POST", "/v1/runs/01NOSUCH/cancel", "", true); code != http.StatusNotFound || !strings.Contains(errorOf(t, body), "no run 01NOSUCH") {
		t.Errorf("cancel of an unknown run: %d %s", code, body)
	}
}

// A secret's value is in no answer and no line of the log, whatever the
// request: stored, refused, or malformed around it.
func TestSecretValueNeverLeaves(t *testing.T) {
	t.Parallel()
	b := setupRemote(t, true)
	const value = "hunter2-7b1d9e"
	check := func(what string, code, want int, body string) {
		t.Helper()
		if code != want {
			t.Errorf("%s: %d, want %d: %s", what, code, want, body)
		}
		if strings.Contains(body, value) || strings.Contains(body, "hunter2") {
			t.Errorf("%s: the value is in the answer: %s", what, body)
		}
	}
	code, body := b.call(t, "PUT", "/v1/secrets/API_KEY", `{"value":"`+value+`"}`, true)
	check("set", code, http.StatusOK, body)
	if body != `{"name":"API_KEY","version":1}`+"\n" {
		t.Errorf("set answered %q", body)
	}
	code, body = b.call(t, "GET", "/v1/secrets", "", true)
	check("list", code, http.StatusOK, body)
	for _, bad := range []string{
		`{"value":"` + value,          // cut short
		`{"value":` + value + `}`,     // not a string: the parse error would quote it
		`"` + value + `"`,             // not an object
		`{"value":["` + value + `"]}`, // not a string either
	} {
		code, body = b.call(t, "PUT", "/v1/secrets/API_KEY", bad, true)
		check("malformed "+bad, code, http.StatusBadRequest, body)
		if !strings.Contains(errorOf(t, body), `want {"value": "<the secret's value>"}`) {
			t.Errorf("malformed: %s", body)
		}
	}
	code, body = b.call(t, "PUT", "/v1/secrets/lower", `{"value":"`+value+`"}`, true)
	check("bad name", code, http.StatusBadRequest, body)
	code, body = b.call(t, "PUT", "/v1/secrets/BIG", `{"value":"`+strings.Repeat(value, 1<<20/len(value)+1)+`"}`, true)
	check("over the body limit", code, http.StatusRequestEntityTooLarge, body)
	code, body = b.call(t, "GET", "/v1/secrets/API_KEY", "", true)
	check("read one", code, http.StatusNotFound, body)
	code, body = b.call(t, "DELETE", "/v1/secrets/API_KEY", "", true)
	check("delete", code, http.StatusNoContent, body)
	if log := b.log.String(); strings.Contains(log, "hunter2") || !strings.Contains(log, "secret=API_KEY") {
		t.Errorf("the log holds the value, or not the name:\n%s", log)
	}
}

func TestSecretsWithoutAVault(t *testing.T) {
	t.Parallel()
	b := setupRemote(t, false)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		path := "/v1/secrets"
		if m != "GET" {
			path += "/A"
		}
		code, body := b.call(t, m, path, `{"value":"v"}`, true)
		if code != http.StatusNotImplemented || !strings.Contains(errorOf(t, body), "no builtin vault") {
			t.Errorf("%s: %d %s", m, code, body)
		}
	}
}

// sizeDeployer takes every push, and records the size of the last bundle.
type sizeDeployer struct{ got atomic.Int64 }

func (d *sizeDeployer) Push(_ context.Context, p *server.PushParams) (*store.Revision, bool, error) {
	d.got.Store(int64(len(p.Bundle)))
	return &store.Revision{Routine: "r", Hash: strings.Repeat("ab", 32), Size: int64(len(p.Bundle))}, true, nil
}

func (d *sizeDeployer) Rollback(context.Context, *server.RollbackParams) (*store.Revision, error) {
	return nil, errors.New("no rollback here")
}

// A push carries a routine's directory, which may be far larger than the
// 1 MiB of the other requests' bodies (a model, a data file): the budget of
// bodies lets it through whole.
func TestPushLargerThanOtherBodies(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &sizeDeployer{}
	ts := httptest.NewServer(server.New(server.Config{Store: st, Queue: scheduler.NewQueue(st, nil, nil),
		Routines: scheduler.NewCatalog(nil), Deployer: d}))
	t.Cleanup(ts.Close)
	const size = 3 << 20
	resp, err := http.Post(ts.URL+"/v1/routines", "application/gzip", bytes.NewReader(make([]byte, size)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || d.got.Load() != size {
		t.Fatalf("push of %d bytes: %d %s, the deployer got %d bytes", size, resp.StatusCode, body, d.got.Load())
	}
	// Other bodies stay bounded.
	resp, err = http.Post(ts.URL+"/v1/events/e", "application/json", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an event of 2 MiB: %d, want 413", resp.StatusCode)
	}
}
