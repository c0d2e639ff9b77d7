//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play the routines binary: a test starts
// os.Args[0] with ROUTINES_TEST_MAIN=1 to get a real process it can signal.
func TestMain(m *testing.M) {
	if os.Getenv("ROUTINES_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ROUTINES_TEST_MAIN=1")
	return cmd
}

func TestCtrlCCancelsRunAndKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := `name: hang
steps:
  - id: hang
    run: |
      sleep 60 &
      echo $! > bg.pid
      echo started
      sleep 60
  - id: after
    run: echo never
`
	if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := command("run-once", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var runID string
	for lines.Scan() {
		line := lines.Text()
		if runID == "" {
			runID = strings.Fields(line)[1]
		}
		if line == "[hang] started" {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for lines.Scan() {
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("exit: %v, want 130", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bg.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if alive(pid) {
		t.Fatalf("background process %d of the cancelled step is still running", pid)
	}

	out, err := command("--project", dir, "show", runID, "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var run struct {
		State string `json:"state"`
		Steps []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatal(err)
	}
	if run.State != "cancelled" || len(run.Steps) != 2 || run.Steps[0].State != "cancelled" || run.Steps[1].State != "cancelled" {
		t.Fatalf("recorded %+v", run)
	}
}

// alive reports whether pid runs; a zombie (dead, not yet reaped by a
// reaper-less init) counts as gone.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
