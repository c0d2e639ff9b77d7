package cli_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// daemon is a `routines serve` running in-process on a free port.
type daemon struct {
	dir    string
	url    string
	stop   func() int // stops the daemon as SIGTERM would and returns its exit code
	stdout *clitest.Buffer
	stderr *clitest.Buffer
}

// startServe runs serve on dir and waits until it has recorded its address.
func startServe(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	return startServeKinds(t, dir, stepkind.NewRegistry(steps.RunKind{}), args...)
}

// startServeKinds is startServe with the given step kinds.
func startServeKinds(t *testing.T, dir string, kinds stepkind.Registry, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{dir: dir, stdout: &clitest.Buffer{}, stderr: &clitest.Buffer{}}
	code := make(chan int, 1)
	go func() {
		deps := cli.Deps{Kinds: kinds, Stdout: d.stdout, Stderr: d.stderr}
		code <- cli.Run(ctx, deps, append([]string{"serve", dir, "--addr", "127.0.0.1:0"}, args...))
	}()
	var once sync.Once
	var rc int
	d.stop = func() int {
		once.Do(func() { cancel(); rc = <-code })
		return rc
	}
	t.Cleanup(func() { d.stop() })
	info := filepath.Join(dir, ".routines", "serve.json")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(info)
		if err == nil {
			var v struct{ Addr string }
			if json.Unmarshal(data, &v) == nil && v.Addr != "" {
				d.url = "http://" + v.Addr
				return d
			}
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited with %d: %s", c, d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", d.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// post sends body and returns the status and decoded JSON answer.
func post(t *testing.T, url string, body string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", req.Method, req.URL, resp.StatusCode, data)
	}
	return resp.StatusCode, v
}

// waitRun polls GET /v1/runs/<id> until the run is final.
func waitRun(t *testing.T, d *daemon, id string) api.RunDetail {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.url + "/v1/runs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var run api.RunDetail
		err = json.NewDecoder(resp.Body).Decode(&run)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if run.Run != nil && run.State.Final() {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not final: %+v", id, run.Run)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// openStore opens the daemon's store beside it, as another process would.
func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestServeAPIAndWebhooks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "greet", "routine.yaml"), `name: greet
steps:
  - id: hello
    run: |
      echo "hello {{ input.who }}"
      echo "greeting=hello {{ input.who }}" >> "$ROUTINES_OUTPUT"
`)
	// The secret is a {{NAME}} reference resolved from the daemon's environment.
	if err := os.Setenv("ROUTINES_TEST_HOOK_SECRET", "s3cret"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "hook", "routine.yaml"), `name: hook
secrets: [ROUTINES_TEST_HOOK_SECRET]
triggers:
  - webhook: { path: /deploy, secret: "{{ROUTINES_TEST_HOOK_SECRET}}" }
steps:
  - id: show
    run: echo "ref={{ event.ref }}" >> "$ROUTINES_OUTPUT"
`)
	writeFile(t, filepath.Join(dir, "broken", "routine.yaml"), "name: broken\nstepz: []\n")
	d := startServe(t, dir)
	if !strings.Contains(d.stderr.String(), "broken/routine.yaml:") {
		t.Errorf("invalid routine not reported with its position: %s", d.stderr.String())
	}

	// API: fire a routine, its output lands in the store.
	code, body := post(t, d.url+"/v1/routines/greet/runs", `{"who":"ada"}`, nil)
	if code != http.StatusAccepted || body["run_id"] == "" {
		t.Fatalf("create run: %d %v", code, body)
	}
	run := waitRun(t, d, body["run_id"].(string))
	if run.State != routine.StateSucceeded || run.Steps[0].Outputs["greeting"] != "hello ada" || run.Trigger.Kind != "api" {
		t.Fatalf("run: %+v %+v", run.Run, run.Steps)
	}
	st := openStore(t, dir)
	logs, err := st.LogList(context.Background(), &store.LogListParams{RunID: run.ID})
	if err != nil || len(logs) == 0 || !strings.Contains(logs[0].Text, "hello ada") {
		t.Fatalf("logs: %v %+v", err, logs)
	}

	// ?wait= answers with the final run.
	code, body = post(t, d.url+"/v1/routines/greet/runs?wait=10s", `{"who":"bob"}`, nil)
	if code != http.StatusOK || body["state"] != "succeeded" || body["id"] == "" {
		t.Fatalf("wait: %d %v", code, body)
	}

	// Webhook with a good signature: 202, a run with the body as event.
	payload := `{"ref":"main"}`
	code, body = post(t, d.url+"/hooks/deploy", payload, map[string]string{"X-Routines-Signature": sign("s3cret", payload), "Content-Type": "application/json"})
	if code != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", code, body)
	}
	run = waitRun(t, d, body["run_id"].(string))
	if run.State != routine.StateSucceeded || run.Steps[0].Outputs["ref"] != "main" || run.Trigger.Kind != "webhook" {
		t.Fatalf("webhook run: %+v %+v", run.Run, run.Steps)
	}

	// Form bodies become an object of strings.
	form := "ref=dev"
	code, body = post(t, d.url+"/hooks/deploy?wait=10s", form, map[string]string{"X-Routines-Signature": sign("s3cret", form), "Content-Type": "application/x-www-form-urlencoded"})
	if code != http.StatusOK || body["state"] != "succeeded" {
		t.Fatalf("form webhook: %d %v", code, body)
	}

	before, err := st.RunCount(context.Background(), &store.RunCountParams{Routine: "hook"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		url    string
		body   string
		header map[string]string
		want   int
	}{
		{"wrong signature", "/hooks/deploy", payload, map[string]string{"X-Routines-Signature": sign("other", payload)}, 401},
		{"missing signature", "/hooks/deploy", payload, nil, 401},
		{"oversize", "/hooks/deploy", `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, nil, 413},
		{"unknown hook", "/hooks/nope", payload, nil, 404},
		{"unknown routine", "/v1/routines/nope/runs", `{}`, nil, 404},
		{"malformed input", "/v1/routines/greet/runs", `{"who":`, nil, 400},
		{"input not strings", "/v1/routines/greet/runs", `{"who":1}`, nil, 400},
	} {
		code, body := post(t, d.url+tc.url, tc.body, tc.header)
		if code != tc.want || body["error"] == "" {
			t.Errorf("%s: %d %v, want %d and a JSON error", tc.name, code, body, tc.want)
		}
	}
	after, err := st.RunCount(context.Background(), &store.RunCountParams{Routine: "hook"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("refused webhooks queued runs: %v then %v", before, after)
	}
	resp, err := http.Get(d.url + "/v1/runs/01NOSUCHRUN")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown run: %d", resp.StatusCode)
	}

	// invoke talks to the daemon recorded in the project.
	r := routines(t, dir, "invoke", "greet", "--input", "who=cy", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("invoke --wait: %+v", r)
	}
	r = routines(t, dir, "-o", "json", "invoke", "greet", "--server", d.url)
	if r.code != 0 || !strings.Contains(r.stdout, `"run_id"`) {
		t.Fatalf("invoke -o json: %+v", r)
	}
	if r := routines(t, dir, "invoke", "nope"); r.code != 2 || !strings.Contains(r.stderr, "no routine") {
		t.Fatalf("invoke unknown: %+v", r)
	}

	if code := d.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, d.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, ".routines", "serve.json")); !os.IsNotExist(err) {
		t.Errorf("serve.json left behind: %v", err)
	}
	if r := routines(t, dir, "invoke", "greet"); r.code != 2 || !strings.Contains(r.stderr, "no daemon") {
		t.Errorf("invoke without daemon: %+v", r)
	}
}

func TestServeToken(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	d := startServe(t, dir, "--token", "tok")
	if code, body := post(t, d.url+"/v1/routines/ping/runs", `{}`, nil); code != 401 || body["error"] == "" {
		t.Fatalf("no token: %d %v", code, body)
	}
	if code, _ := post(t, d.url+"/v1/routines/ping/runs", `{}`, map[string]string{"Authorization": "Bearer nope"}); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, body := post(t, d.url+"/v1/routines/ping/runs?wait=10s", `{}`, map[string]string{"Authorization": "Bearer tok"}); code != 200 || body["state"] != "succeeded" {
		t.Fatalf("token: %d %v", code, body)
	}
	if r := routines(t, dir, "invoke", "ping", "--wait", "--token", "tok"); r.code != 0 {
		t.Fatalf("invoke with token: %+v", r)
	}
	if r := routines(t, dir, "invoke", "ping"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("invoke without token: %+v", r)
	}
}

func TestServeInvokeWaitFailed(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: boom\nsteps:\n  - id: boom\n    run: exit 3\n")
	startServe(t, dir)
	r := routines(t, dir, "invoke", "boom", "--wait")
	if r.code != 1 || !strings.Contains(r.stdout, "failed") {
		t.Fatalf("invoke --wait of a failing routine: %+v", r)
	}
}

func TestServeMaxQueued(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	d := startServe(t, dir, "--max-queued", "1", "--workers", "1")
	// Fill the queue behind the daemon's back: a run it never claims (not before far away).
	st := openStore(t, dir)
	later := time.Now().Add(time.Hour)
	if _, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: "01JQUEUEDLATER0000000000000", Routine: "ping", QueuedAt: time.Now(), NotBefore: &later}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/routines/ping/runs", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full queue: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestServeEveryTrigger(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: tick\ntriggers:\n  - every: 1s\nsteps:\n  - id: tick\n    run: echo tick\n")
	startServe(t, dir)
	st := openStore(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for {
		runs, err := st.RunList(context.Background(), &store.RunListParams{Routine: "tick", States: []routine.State{routine.StateSucceeded}})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 {
			if runs[0].Trigger.Kind != "every" || !strings.Contains(string(runs[0].Trigger.Payload), "scheduled_at") {
				t.Fatalf("trigger: %+v", runs[0].Trigger)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("every: 1s did not fire within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeConcurrencyMax(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: slow\nconcurrency: { max: 1 }\nsteps:\n  - id: nap\n    run: sleep 0.3\n")
	d := startServe(t, dir, "--workers", "4")
	var ids []string
	for range 3 {
		code, body := post(t, d.url+"/v1/routines/slow/runs", `{}`, nil)
		if code != 202 {
			t.Fatalf("%d %v", code, body)
		}
		ids = append(ids, body["run_id"].(string))
	}
	var runs []api.RunDetail
	for _, id := range ids {
		runs = append(runs, waitRun(t, d, id))
	}
	for i, a := range runs {
		if a.State != routine.StateSucceeded {
			t.Fatalf("run %s: %s", a.ID, a.State)
		}
		for _, b := range runs[i+1:] {
			if a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) {
				t.Errorf("runs overlap: %s %s–%s and %s %s–%s", a.ID, a.StartedAt, a.FinishedAt, b.ID, b.StartedAt, b.FinishedAt)
			}
		}
	}
}

func TestServeShutdownAndResume(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: long
steps:
  - id: first
    run: echo once >> first.count
  - id: wait
    run: |
      if [ ! -e started ]; then touch started; sleep 30; fi
  - id: last
    run: echo done
`)
	d := startServe(t, dir, "--grace", "200ms")
	code, body := post(t, d.url+"/v1/routines/long/runs", `{}`, nil)
	if code != 202 {
		t.Fatalf("%d %v", code, body)
	}
	id := body["run_id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("step wait did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if code := d.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, d.stderr.String())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s with --grace 200ms", took)
	}
	st := openStore(t, dir)
	run, err := st.RunGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != routine.StateQueued || run.Attempt != 1 {
		t.Fatalf("interrupted run: %s attempt %d, want queued attempt 1", run.State, run.Attempt)
	}
	recs, err := st.StepList(context.Background(), id)
	if err != nil || len(recs) == 0 || recs[0].ID != "first" || recs[0].State != routine.StateSucceeded {
		t.Fatalf("checkpoint of the interrupted run: %v %+v", err, recs)
	}
	// Handed back, never recorded ended: the stats count no run yet.
	ended := func() map[routine.State]int64 {
		t.Helper()
		stats, err := st.Stats(context.Background(), &store.StatsParams{Since: start.Add(-time.Hour), Until: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) == 0 {
			return nil
		}
		return stats[0].Totals.ByState
	}
	if got := ended(); len(got) != 0 {
		t.Errorf("an interrupted run counted as ended: %v", got)
	}

	// The next daemon resumes it after its finished step.
	d = startServe(t, dir)
	done := waitRun(t, d, id)
	if done.State != routine.StateSucceeded || done.Attempt != 2 {
		t.Fatalf("resumed run: %s attempt %d", done.State, done.Attempt)
	}
	count, err := os.ReadFile(filepath.Join(dir, "first.count"))
	if err != nil || string(count) != "once\n" {
		t.Fatalf("first step ran again: %q %v", count, err)
	}
	if got := ended(); len(got) != 1 || got[routine.StateSucceeded] != 1 {
		t.Errorf("after the resume the stats count %v, want one run succeeded", got)
	}
}

func TestServeDuplicateNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "routine.yaml"), "name: same\nsteps:\n  - id: s\n    run: echo a\n")
	writeFile(t, filepath.Join(dir, "b", "routine.yaml"), "name: same\nsteps:\n  - id: s\n    run: echo b\n")
	r := routines(t, "", "serve", dir, "--addr", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, "defined twice") {
		t.Fatalf("duplicate names: %+v", r)
	}
}

func TestServeFileTrigger(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: inbox
triggers:
  - file: { path: ./inbox, glob: "*.txt", debounce: 50ms }
steps:
  - id: seen
    run: echo "path={{ event.path }}" >> "$ROUTINES_OUTPUT"
`)
	if err := os.Mkdir(filepath.Join(dir, "inbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	startServe(t, dir)
	writeFile(t, filepath.Join(dir, "inbox", "a.txt"), "hi")
	st := openStore(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for {
		runs, err := st.RunList(context.Background(), &store.RunListParams{Routine: "inbox", States: []routine.State{routine.StateSucceeded}})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 {
			if runs[0].Trigger.Kind != "file" || !strings.Contains(string(runs[0].Trigger.Payload), "a.txt") {
				t.Fatalf("trigger: %+v", runs[0].Trigger)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("file trigger did not fire within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeFailsRunsOfUnknownRoutine(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	st := openStore(t, dir)
	const id = "01JGONE0000000000000000000"
	if _, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: id, Routine: "gone", QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir)
	run := waitRun(t, d, id)
	if run.State != routine.StateFailed || run.Error == nil || run.Error.Code != routine.CodeInvalidRoutine || !strings.Contains(run.Error.Message, "gone") {
		t.Fatalf("run of a removed routine: %+v %+v", run.Run, run.Error)
	}
}

// TestServeSync: --sync takes full or normal; anything else is refused
// before the daemon starts, saying what to write.
func TestServeSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "greet", "routine.yaml"), "name: greet\nsteps:\n  - id: a\n    run: echo hi\n")
	r := routines(t, dir, "serve", dir, "--sync", "off")
	if r.code != 2 || !strings.Contains(r.stderr, "--sync off: want full (the default) or normal") {
		t.Errorf("serve --sync off: %+v", r)
	}
}
