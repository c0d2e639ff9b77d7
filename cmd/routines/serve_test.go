//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
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

// TestServeKill9Cycles kills the daemon with SIGKILL at a random moment of
// a multi-step run, five times over, accepting a new run before each kill,
// and restarts it. In the end every accepted run has succeeded once and no
// step that finished was started again. The steps append to exec.log when
// they start and when they finish; the kill lands while a step sleeps (0.6 s,
// far longer than the at most 100 ms the kill waits, also on a loaded machine)
// between the two, so "finished" is unambiguous.
func TestServeKill9Cycles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	step := func(id string) string {
		return `  - id: ` + id + `
    run: |
      echo "{{ run.id }} ` + id + ` start $$" >> exec.log
      sleep 0.6
      echo "{{ run.id }} ` + id + ` end" >> exec.log
`
	}
	yaml := "name: crashy\nsteps:\n" + step("s1") + step("s2") + step("s3")
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "exec.log")
	// unfinished returns the lines of exec.log and the last step that
	// started and has not finished: "run step" and its pid.
	unfinished := func() (lines []string, key string, pid int) {
		data, _ := os.ReadFile(logFile)
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, "", 0
		}
		lines = strings.Split(strings.TrimSpace(string(data)), "\n")
		open := map[string]int{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 3 {
				continue
			}
			k := f[0] + " " + f[1]
			if f[2] == "start" && len(f) == 4 {
				p, _ := strconv.Atoi(f[3])
				open[k] = p
				key, pid = k, p
			} else if f[2] == "end" {
				delete(open, k)
				if k == key {
					key, pid = "", 0
				}
			}
		}
		return lines, key, pid
	}

	var accepted []string
	killed := map[string]int{} // "run step" -> times SIGKILL cut it short
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for cycle := range 5 {
		proc, url := startDaemon(t, dir, "--lease", "1s", "--workers", "1")
		// Read before the run is queued: it may start, and run steps, at once.
		before, _, _ := unfinished()
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
			t.Fatalf("cycle %d: queue: %d %v", cycle, resp.StatusCode, err)
		}
		accepted = append(accepted, queued.RunID)
		// Wait for a step this daemon started (and that still sleeps), a
		// random number of steps into the cycle, then kill at a random
		// moment of its sleep.
		skip := rng.IntN(3)
		var key string
		var pid int
		deadline := time.Now().Add(10 * time.Second)
		for {
			lines, k, p := unfinished()
			if k != "" && len(lines) > len(before)+2*skip {
				key, pid = k, p
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no step started: %q", cycle, lines)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		if err := proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = proc.Wait()
		// The step dies with the daemon (the sandbox's Pdeathsig and
		// cgroups); its pid is not signalled here, as it may be another
		// process's by now.
		_ = pid
		killed[key]++
	}

	_, url := startDaemon(t, dir, "--lease", "1s")
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range accepted {
		var run struct {
			State string `json:"state"`
			Error any    `json:"error"`
		}
		for run.State != "succeeded" {
			if time.Now().After(deadline) {
				t.Fatalf("run %s not completed: %+v", id, run)
			}
			resp, err := http.Get(url + "/v1/runs/" + id)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&run)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if run.State == "failed" || run.State == "cancelled" {
				t.Fatalf("run %s ended %s: %v", id, run.State, run.Error)
			}
			if run.State != "succeeded" {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	lines, _, _ := unfinished()
	starts, ends := map[string]int{}, map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("log line %q", l)
		}
		k := f[0] + " " + f[1]
		switch f[2] {
		case "start":
			if ends[k] > 0 {
				t.Errorf("%s started again after it finished", k)
			}
			starts[k]++
		case "end":
			ends[k]++
		}
	}
	for _, id := range accepted {
		for _, s := range []string{"s1", "s2", "s3"} {
			k := id + " " + s
			if ends[k] != 1 {
				t.Errorf("%s finished %d times, want 1", k, ends[k])
			}
			if starts[k] != 1+killed[k] {
				t.Errorf("%s started %d times, killed %d times", k, starts[k], killed[k])
			}
		}
	}
	t.Logf("runs %d, steps cut short %v", len(accepted), killed)
	if len(ends) != 3*len(accepted) {
		t.Errorf("%d steps finished, want %d (runs %v)", len(ends), 3*len(accepted), accepted)
	}
}
