package steps

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/api"
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

// fakePublisher is the run's publisher: it records the emissions it is
// given and answers res.
type fakePublisher struct {
	got []*stepkind.Emission
	res *api.EventResult
}

func (p *fakePublisher) Emit(_ context.Context, e *stepkind.Emission) (*api.EventResult, error) {
	p.got = append(p.got, e)
	return p.res, nil
}

func emitExec(t *testing.T, a *routine.EmitAction, events stepkind.Publisher, env map[string]string) (routine.Outputs, string, error) {
	t.Helper()
	var out strings.Builder
	res, err := EmitKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "alert", Attempt: 1,
		Action: &routine.Action{Emit: a}, Events: events, Env: env, Stdout: &out,
	})
	if err != nil {
		return nil, out.String(), err
	}
	wantShape(t, "emit", res.Outputs)
	return res.Outputs, out.String(), nil
}

func TestEmitThroughRunPublisher(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{res: &api.EventResult{Runs: []api.EventRun{
		{Routine: "page", RunID: "01A", Deduplicated: true}, {Routine: "log", RunID: "01B"},
	}}}
	out, log, err := emitExec(t, &routine.EmitAction{Event: "cpu.alert", Data: map[string]string{"host": "web1"}, Dedupe: "web 1"},
		pub, map[string]string{"ROUTINES_TOKEN": "from-env"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["run_ids"], []any{"01A", "01B"}) || out["deduplicated"] != "true" {
		t.Fatalf("outputs %v", out)
	}
	want := []*stepkind.Emission{{Event: "cpu.alert", Data: map[string]string{"host": "web1"}, Dedupe: "web 1", Token: "from-env"}}
	if !reflect.DeepEqual(pub.got, want) {
		t.Fatalf("emitted %+v, want %+v", pub.got, want)
	}
	if !strings.Contains(log, "page: deduplicated into run 01A") || !strings.Contains(log, "log: queued run 01B") {
		t.Fatalf("log %q", log)
	}
}

// TestEmitToServer: server: goes over HTTP, with the step's token, even
// when the run has a publisher of its own.
func TestEmitToServer(t *testing.T) {
	t.Parallel()
	f := &fakeDaemon{}
	ts := f.serve(t, `{"runs":[],"run_ids":[]}`, 202)
	pub := &fakePublisher{}
	out, log, err := emitExec(t, &routine.EmitAction{Event: "nobody", Server: ts.URL + "/", Token: "tok", Dedupe: "web 1"}, pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out["run_ids"], []any{}) || out["deduplicated"] != "false" || f.body != "{}" || f.auth != "Bearer tok" {
		t.Fatalf("outputs %v, body %q, auth %q", out, f.body, f.auth)
	}
	if f.path != "/v1/events/nobody" || f.query != "dedupe=web+1" {
		t.Fatalf("request %s?%s", f.path, f.query)
	}
	if len(pub.got) != 0 {
		t.Fatalf("the run's publisher got %+v; server: should have had it", pub.got)
	}
	if !strings.Contains(log, "no routine listens") {
		t.Fatalf("log %q", log)
	}
}

func TestEmitErrors(t *testing.T) {
	t.Parallel()
	f := &fakeDaemon{}
	ts := f.serve(t, `{"error":"missing or wrong API token"}`, 401)
	if _, _, err := emitExec(t, &routine.EmitAction{Event: "x", Server: ts.URL}, nil, nil); err == nil || !strings.Contains(err.Error(), "missing or wrong API token") {
		t.Fatalf("401: %v", err)
	}
	if _, _, err := emitExec(t, &routine.EmitAction{Event: "x"}, nil, nil); err == nil || !strings.Contains(err.Error(), "no daemon to publish to: set the step's server") {
		t.Fatalf("no publisher: %v", err)
	}
	if _, _, err := emitExec(t, &routine.EmitAction{Event: " "}, nil, nil); err == nil || !strings.Contains(err.Error(), "names no event") {
		t.Fatalf("empty event: %v", err)
	}
}

// TestEmitRefusesHostileNames: a rendered name that would be a path or
// forge a line reaches neither the publisher nor a server, and another
// try cannot help.
func TestEmitRefusesHostileNames(t *testing.T) {
	t.Parallel()
	f := &fakeDaemon{}
	ts := f.serve(t, `{"runs":[],"run_ids":[]}`, 202)
	pub := &fakePublisher{}
	for _, name := range []string{"../routines/x/runs", "cpu.alert\r\nX-Injected: yes", "cpu alert"} {
		for _, server := range []string{"", ts.URL} {
			_, _, err := emitExec(t, &routine.EmitAction{Event: name, Server: server}, pub, nil)
			var serr *stepkind.Error
			if err == nil || !strings.Contains(err.Error(), "must be 1 to 200 letters, digits and _ . : -") || !errors.As(err, &serr) || serr.Retryable {
				t.Fatalf("event %q (server %q): %v", name, server, err)
			}
		}
	}
	if len(pub.got) != 0 || f.path != "" {
		t.Fatalf("published %+v, posted to %q", pub.got, f.path)
	}
}
