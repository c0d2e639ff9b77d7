package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemon starts `routines serve` as a real process and returns it with
// its base URL, read from the serve.json it writes.
func startDaemon(t *testing.T, dir string, args ...string) (*os.Process, string) {
	t.Helper()
	info := filepath.Join(dir, ".routines", "serve.json")
	os.Remove(info) // a killed daemon leaves its file behind
	cmd := command(append([]string{"serve", dir, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var v struct {
			Addr string
			PID  int
		}
		if data, err := os.ReadFile(info); err == nil && json.Unmarshal(data, &v) == nil && v.PID == cmd.Process.Pid {
			return cmd.Process, "http://" + v.Addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("daemon did not start")
	return nil, ""
}

func TestServeKill9Resumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := `name: crashy
steps:
  - id: first
    run: echo once >> first.count
  - id: slow
    run: |
      if [ -e started ]; then exit 0; fi
      echo $$ > step.pid
      touch started
      sleep 30
  - id: last
    run: echo done
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, url := startDaemon(t, dir, "--lease", "1s")
	resp, err := http.Post(url+"/v1/routines/crashy/runs", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var queued struct {
		RunID string `json:"run_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("queue: %d %v", resp.StatusCode, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("step slow did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Wait()
	// The step's process group outlives the daemon, as after a real crash; end it.
	if data, err := os.ReadFile(filepath.Join(dir, "step.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}

	_, url = startDaemon(t, dir)
	var run struct {
		State   string `json:"state"`
		Attempt int    `json:"attempt"`
	}
	deadline = time.Now().Add(15 * time.Second)
	for run.State != "succeeded" {
		if time.Now().After(deadline) {
			t.Fatalf("run not resumed: %+v", run)
		}
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(url + "/v1/runs/" + queued.RunID)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&run)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if run.State == "failed" || run.State == "cancelled" {
			t.Fatalf("resumed run ended %s", run.State)
		}
	}
	if run.Attempt != 2 {
		t.Errorf("attempt %d, want 2", run.Attempt)
	}
	if count, err := os.ReadFile(filepath.Join(dir, "first.count")); err != nil || string(count) != "once\n" {
		t.Fatalf("finished step ran again: %q %v", count, err)
	}
}
