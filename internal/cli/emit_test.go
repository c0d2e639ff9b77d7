package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
)

// emitEvent posts an event and decodes the answer.
func emitEvent(t *testing.T, d *daemon, name, body string) api.EventResult {
	t.Helper()
	code, v := post(t, d.url+"/v1/events/"+name, body, nil)
	if code != 202 {
		t.Fatalf("POST /v1/events/%s: %d %v", name, code, v)
	}
	data, _ := json.Marshal(v)
	var res api.EventResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.RunIDs) != len(res.Runs) {
		t.Fatalf("run_ids %v do not match runs %+v", res.RunIDs, res.Runs)
	}
	return res
}

// byRoutine maps the runs of an event answer by routine.
func byRoutine(res api.EventResult) map[string]api.EventRun {
	m := map[string]api.EventRun{}
	for _, r := range res.Runs {
		m[r.Routine] = r
	}
	return m
}

func eventProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alert", "routine.yaml"), `name: alert
triggers:
  - event: { name: cpu.alert, dedupe: "{{ event.host }}", window: 1s }
steps:
  - id: page
    run: echo "host={{ event.host }}" >> "$ROUTINES_OUTPUT"
`)
	writeFile(t, filepath.Join(dir, "audit", "routine.yaml"), `name: audit
triggers:
  - event: { name: cpu.alert }
steps:
  - id: log
    run: echo "cpu={{ event.cpu }}" >> "$ROUTINES_OUTPUT"
`)
	writeFile(t, filepath.Join(dir, "other", "routine.yaml"), `name: other
triggers:
  - event: { name: disk.full }
steps:
  - id: noop
    run: "true"
`)
	return dir
}

func TestEmitEventAPI(t *testing.T) {
	t.Parallel()
	dir := eventProject(t)
	d := startServe(t, dir)

	first := byRoutine(emitEvent(t, d, "cpu.alert", `{"host":"web1","cpu":97}`))
	if len(first) != 2 || first["alert"].RunID == "" || first["audit"].RunID == "" || first["alert"].Deduplicated {
		t.Fatalf("first event: %+v", first)
	}
	// Inside the window: the alert folds into its first run, audit (no
	// dedupe) gets a run of its own; another host is another key.
	second := byRoutine(emitEvent(t, d, "cpu.alert", `{"host":"web1","cpu":98}`))
	if !second["alert"].Deduplicated || second["alert"].RunID != first["alert"].RunID {
		t.Fatalf("duplicate: %+v, first %+v", second["alert"], first["alert"])
	}
	if second["audit"].Deduplicated || second["audit"].RunID == first["audit"].RunID {
		t.Fatalf("audit without dedupe: %+v", second["audit"])
	}
	if other := byRoutine(emitEvent(t, d, "cpu.alert", `{"host":"web2"}`)); other["alert"].Deduplicated {
		t.Fatalf("another host deduplicated: %+v", other["alert"])
	}
	// An explicit key overrides the trigger's.
	forced := byRoutine(emitEvent(t, d, "cpu.alert?dedupe=web1", `{"host":"web3"}`))
	if !forced["alert"].Deduplicated || forced["alert"].RunID != first["alert"].RunID {
		t.Fatalf("?dedupe=web1: %+v", forced["alert"])
	}

	run := waitRun(t, d, first["alert"].RunID)
	if run.State != "succeeded" || run.Trigger.Kind != "event" || run.Steps[0].Outputs["host"] != "web1" {
		t.Fatalf("alert run: %+v %+v", run.Run, run.Steps)
	}
	if run := waitRun(t, d, first["audit"].RunID); run.Steps[0].Outputs["cpu"] != "97" {
		t.Fatalf("audit run: %+v", run.Steps)
	}

	// After the window (1s from the first run): a new run.
	time.Sleep(time.Until(run.QueuedAt.Add(1100 * time.Millisecond)))
	third := byRoutine(emitEvent(t, d, "cpu.alert", `{"host":"web1"}`))
	if third["alert"].Deduplicated || third["alert"].RunID == first["alert"].RunID {
		t.Fatalf("after the window: %+v", third["alert"])
	}

	// Nobody listens: 202 and no runs. Bad JSON: 400.
	if res := emitEvent(t, d, "nobody.cares", `{}`); len(res.Runs) != 0 || res.RunIDs == nil {
		t.Fatalf("unheard event: %+v", res)
	}
	if code, v := post(t, d.url+"/v1/events/cpu.alert", `{nope`, nil); code != 400 {
		t.Fatalf("bad JSON: %d %v", code, v)
	}
	if code, v := post(t, d.url+"/v1/events/cpu.alert", strings.Repeat("x", 1<<20+1), nil); code != 413 {
		t.Fatalf("big body: %d %v", code, v)
	}
}

func TestEmitEventToken(t *testing.T) {
	t.Parallel()
	dir := eventProject(t)
	d := startServe(t, dir, "--token", "tok")
	if code, _ := post(t, d.url+"/v1/events/cpu.alert", `{}`, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, v := post(t, d.url+"/v1/events/cpu.alert", `{}`, map[string]string{"Authorization": "Bearer tok"}); code != 202 {
		t.Fatalf("token: %d %v", code, v)
	}
	if r := routines(t, dir, "emit", "cpu.alert", "--token", "tok"); r.code != 0 {
		t.Fatalf("emit with token: %+v", r)
	}
}

func TestEmitCommand(t *testing.T) {
	t.Parallel()
	dir := eventProject(t)
	if r := routines(t, dir, "emit", "cpu.alert"); r.code != 2 || !strings.Contains(r.stderr, "no daemon") {
		t.Fatalf("no daemon: %+v", r)
	}
	d := startServe(t, dir)
	r := routines(t, dir, "-o", "json", "emit", "cpu.alert", "--data", `{"host":"db1","cpu":91}`)
	if r.code != 0 {
		t.Fatalf("emit: %+v", r)
	}
	var res api.EventResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	runs := byRoutine(res)
	if len(runs) != 2 || runs["alert"].Deduplicated {
		t.Fatalf("emit -o json: %+v", res)
	}
	if run := waitRun(t, d, runs["alert"].RunID); run.Steps[0].Outputs["host"] != "db1" {
		t.Fatalf("alert run: %+v", run.Steps)
	}
	r = routines(t, dir, "emit", "cpu.alert", "--data", `{"host":"db2"}`, "--dedupe", "db1")
	if r.code != 0 || !strings.Contains(r.stdout, "run "+runs["alert"].RunID+" deduplicated · alert") || !strings.Contains(r.stdout, "queued · audit") {
		t.Fatalf("emit --dedupe: %+v", r)
	}
	if r := routines(t, dir, "emit", "nobody", "-d", ""); r.code != 0 || !strings.Contains(r.stdout, "no routine listens") {
		t.Fatalf("unheard: %+v", r)
	}
	if r := routines(t, dir, "emit", "../cpu\r\nalert", "--server", "http://127.0.0.1:1"); r.code != 2 || !strings.Contains(r.stderr, "must be 1 to") {
		t.Fatalf("a hostile event name was not refused before it was sent: %+v", r)
	}
	if r := routines(t, dir, "emit", "cpu.alert", "--data", `{bad`); r.code != 2 || !strings.Contains(r.stderr, "--data is not valid JSON") {
		t.Fatalf("bad data: %+v", r)
	}
	if r := routines(t, dir, "emit", "cpu.alert", "--server", "http://127.0.0.1:1"); r.code != 2 || !strings.Contains(r.stderr, "no daemon answers") {
		t.Fatalf("unreachable: %+v", r)
	}
}

func TestEmitStepChainsRoutines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "watch", "routine.yaml"), `name: watch
inputs:
  host: { required: true }
steps:
  - id: measure
    run: echo "cpu=95" >> "$ROUTINES_OUTPUT"
  - id: alert
    emit:
      event: cpu.alert
      data:
        host: "{{ input.host }}"
        cpu: "{{ steps.measure.outputs.cpu }}"
      dedupe: "{{ input.host }}"
`)
	writeFile(t, filepath.Join(dir, "page", "routine.yaml"), `name: page
triggers:
  - event: { name: cpu.alert, window: 1m }
steps:
  - id: page
    run: echo "msg={{ event.host }} at {{ event.cpu }}%" >> "$ROUTINES_OUTPUT"
`)
	for _, name := range []string{"watch", "page"} {
		if r := routines(t, dir, "validate", filepath.Join(dir, name)); r.code != 0 {
			t.Fatalf("validate %s: %+v", name, r)
		}
	}
	d := startServeKinds(t, dir, stepkind.NewRegistry(steps.RunKind{}, steps.EmitKind{}))
	ids := make([]string, 2)
	for i := range ids {
		code, v := post(t, d.url+"/v1/routines/watch/runs?wait=20s", `{"host":"web9"}`, nil)
		if code != 200 || v["state"] != "succeeded" {
			t.Fatalf("watch: %d %v\n%s", code, v, d.stderr.String())
		}
		data, _ := json.Marshal(v)
		var run api.RunDetail
		if err := json.Unmarshal(data, &run); err != nil {
			t.Fatal(err)
		}
		out := run.Steps[1].Outputs
		want := []string{"false", "true"}[i]
		// run_ids is a list in the API's JSON, as expressions see it.
		runIDs, _ := out["run_ids"].([]any)
		if len(runIDs) != 1 || out["deduplicated"] != want {
			t.Fatalf("emit step %d outputs: %v", i, out)
		}
		ids[i] = runIDs[0].(string)
	}
	if ids[0] != ids[1] {
		t.Fatalf("second emit with the same dedupe key got %s, want %s", ids[1], ids[0])
	}
	page := waitRun(t, d, ids[0])
	if page.Routine != "page" || page.State != "succeeded" || page.Steps[0].Outputs["msg"] != "web9 at 95%" {
		t.Fatalf("chained run: %+v %+v", page.Run, page.Steps)
	}
}

func TestEmitStepWithoutDaemon(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: lonely
steps:
  - id: tell
    emit: { event: nobody.home }
`)
	var stdout, stderr bytes.Buffer
	deps := cli.Deps{Kinds: stepkind.NewRegistry(steps.RunKind{}, steps.EmitKind{}), Stdout: &stdout, Stderr: &stderr}
	code := cli.Run(context.Background(), deps, []string{"--project", dir, "run-once", dir})
	if code != 1 || !strings.Contains(stdout.String()+stderr.String(), "no daemon is running") {
		t.Fatalf("run-once without daemon: %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
