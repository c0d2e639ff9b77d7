package steps

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// fakeDaemon answers POST /v1/events/<name> as the daemon does, and
// records what it was sent.
type fakeDaemon struct {
	path, query, auth, body string
}

func (f *fakeDaemon) serve(t *testing.T, answer string, code int) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.path, f.query, f.auth, f.body = r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), string(b)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func emitExec(t *testing.T, a *routine.EmitAction, stateDir string, env map[string]string) (routine.Outputs, string, error) {
	t.Helper()
	var out strings.Builder
	res, err := EmitKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "alert", Attempt: 1,
		Action: &routine.Action{Emit: a}, StateDir: stateDir, Env: env, Stdout: &out,
	})
	if err != nil {
		return nil, out.String(), err
	}
	wantShape(t, "emit", res.Outputs)
	return res.Outputs, out.String(), nil
}

func TestEmitThroughServeJSON(t *testing.T) {
	f := &fakeDaemon{}
	ts := f.serve(t, `{"runs":[{"routine":"page","run_id":"01A","deduplicated":true},{"routine":"log","run_id":"01B"}],"run_ids":["01A","01B"]}`, 202)
	proj := project.Project{Dir: t.TempDir()}
	lock, err := proj.LockDaemon()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if err := lock.Publish(project.Daemon{Addr: strings.TrimPrefix(ts.URL, "http://"), PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	stateDir := proj.StateDir()
	out, log, err := emitExec(t, &routine.EmitAction{Event: "cpu alert", Data: map[string]string{"host": "web1"}, Dedupe: "web 1"},
		stateDir, map[string]string{"ROUTINES_TOKEN": "from-env"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["run_ids"], []any{"01A", "01B"}) || out["deduplicated"] != "true" {
		t.Fatalf("outputs %v", out)
	}
	var data map[string]string
	if err := json.Unmarshal([]byte(f.body), &data); err != nil || data["host"] != "web1" {
		t.Fatalf("body %q", f.body)
	}
	if f.path != "/v1/events/cpu%20alert" || f.query != "dedupe=web+1" || f.auth != "Bearer from-env" {
		t.Fatalf("request %s?%s auth %q", f.path, f.query, f.auth)
	}
	if !strings.Contains(log, "page: deduplicated into run 01A") || !strings.Contains(log, "log: queued run 01B") {
		t.Fatalf("log %q", log)
	}
}

func TestEmitToServer(t *testing.T) {
	f := &fakeDaemon{}
	ts := f.serve(t, `{"runs":[],"run_ids":[]}`, 202)
	out, log, err := emitExec(t, &routine.EmitAction{Event: "nobody", Server: ts.URL + "/", Token: "tok"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["run_ids"], []any{}) || out["deduplicated"] != "false" || f.body != "{}" || f.auth != "Bearer tok" || f.query != "" {
		t.Fatalf("outputs %v, body %q, auth %q, query %q", out, f.body, f.auth, f.query)
	}
	if !strings.Contains(log, "no routine listens") {
		t.Fatalf("log %q", log)
	}
}

func TestEmitErrors(t *testing.T) {
	f := &fakeDaemon{}
	ts := f.serve(t, `{"error":"missing or wrong API token"}`, 401)
	if _, _, err := emitExec(t, &routine.EmitAction{Event: "x", Server: ts.URL}, "", nil); err == nil || !strings.Contains(err.Error(), "missing or wrong API token") {
		t.Fatalf("401: %v", err)
	}
	if _, _, err := emitExec(t, &routine.EmitAction{Event: "x"}, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "no daemon is running") {
		t.Fatalf("no daemon: %v", err)
	}
	if _, _, err := emitExec(t, &routine.EmitAction{Event: " "}, "", nil); err == nil || !strings.Contains(err.Error(), "names no event") {
		t.Fatalf("empty event: %v", err)
	}
}
