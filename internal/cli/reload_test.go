package cli_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// replaceFile writes text to path the way editors do: a temporary file
// renamed over the old one.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".routine.yaml.swp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitStderr waits until the daemon's stderr holds want n times.
func waitStderr(t *testing.T, d *daemon, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.stderr.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("stderr has not %d× %q: %s", n, want, d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func echoRoutine(text string) string {
	return "name: echo\nsteps:\n  - id: say\n    run: echo \"said=" + text + "\" >> \"$ROUTINES_OUTPUT\"\n"
}

func said(t *testing.T, d *daemon) string {
	t.Helper()
	code, body := post(t, d.url+"/v1/routines/echo/runs?wait=10s", `{}`, nil)
	if code != http.StatusOK || body["state"] != "succeeded" {
		t.Fatalf("run echo: %d %v", code, body)
	}
	steps := body["steps"].([]any)
	return steps[0].(map[string]any)["outputs"].(map[string]any)["said"].(string)
}

func TestServeReloadsEditedRoutines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	echo := filepath.Join(dir, "echo", "routine.yaml")
	writeFile(t, echo, echoRoutine("one"))
	d := startServe(t, dir)
	if got := said(t, d); got != "one" {
		t.Fatalf("first revision said %q", got)
	}

	// A valid edit: the next run runs the new revision.
	replaceFile(t, echo, echoRoutine("two"))
	waitStderr(t, d, "reload: echo reloaded", 1)
	if got := said(t, d); got != "two" {
		t.Fatalf("after the edit: said %q, want two", got)
	}

	// An invalid edit is reported with positions; the previous revision runs on.
	replaceFile(t, echo, "name: echo\nstepz: []\n")
	waitStderr(t, d, "keeps its previous revision", 1)
	if !strings.Contains(d.stderr.String(), "echo/routine.yaml:2:") {
		t.Errorf("invalid edit reported without its position: %s", d.stderr.String())
	}
	if got := said(t, d); got != "two" {
		t.Fatalf("after an invalid edit: said %q, want two", got)
	}

	// A new routine file in a new directory is picked up, webhook and all.
	writeFile(t, filepath.Join(dir, "later", "sub", "routine.yaml"),
		"name: later\ntriggers:\n  - webhook: { path: /later }\nsteps:\n  - id: s\n    run: \"true\"\n")
	waitStderr(t, d, "reload: later added", 1)
	if code, body := post(t, d.url+"/hooks/later?wait=10s", `{}`, nil); code != http.StatusOK || body["state"] != "succeeded" {
		t.Fatalf("webhook of an added routine: %d %v", code, body)
	}

	// An every: trigger changed takes effect; a removed file stops it.
	tick := filepath.Join(dir, "tick", "routine.yaml")
	writeFile(t, tick, "name: tick\ntriggers:\n  - every: 1h\nsteps:\n  - id: s\n    run: \"true\"\n")
	waitStderr(t, d, "reload: tick added", 1)
	replaceFile(t, tick, "name: tick\ntriggers:\n  - every: 1s\nsteps:\n  - id: s\n    run: \"true\"\n")
	waitStderr(t, d, "reload: tick reloaded", 1)
	st := openStore(t, dir)
	count := func() int {
		n, err := st.RunCount(context.Background(), &store.RunCountParams{Routine: "tick"})
		if err != nil {
			t.Fatal(err)
		}
		return n[routine.StateQueued] + n[routine.StateRunning] + n[routine.StateSucceeded]
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("every: 1s after the edit fired %d times in 10s", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(tick); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, d, "reload: tick removed", 1)
	time.Sleep(100 * time.Millisecond) // a tick being queued as the file went
	before := count()
	time.Sleep(1500 * time.Millisecond)
	if after := count(); after != before {
		t.Errorf("a removed routine's every: trigger fired on: %d then %d runs", before, after)
	}
	if code, _ := post(t, d.url+"/v1/routines/tick/runs", `{}`, nil); code != http.StatusNotFound {
		t.Errorf("removed routine: API answered %d, want 404", code)
	}
}

func TestServeRequeuesLongBackoffs(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, `name: flaky
steps:
  - id: once
    run: echo x >> once.count
  - id: second-try
    run: |
      n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries
      [ "$n" -ge 2 ]
    retry: { attempts: 2, backoff: constant, initial: 1s, jitter: false }
`)
	d := startServe(t, dir, "--workers", "1", "--requeue-after", "100ms")
	code, body := post(t, d.url+"/v1/routines/flaky/runs?wait=20s", `{}`, nil)
	if code != http.StatusOK || body["state"] != "succeeded" {
		t.Fatalf("run: %d %v", code, body)
	}
	if body["attempt"] != float64(2) {
		t.Errorf("run attempt %v, want 2 (requeued once)", body["attempt"])
	}
	if !strings.Contains(d.stderr.String(), "run requeued for a retry") {
		t.Errorf("no requeue logged: %s", d.stderr.String())
	}
	if data, err := os.ReadFile(filepath.Join(dir, "once.count")); err != nil || string(data) != "x\n" {
		t.Errorf("the finished step ran again: %q %v", data, err)
	}
}
