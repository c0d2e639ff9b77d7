//go:build linux

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWithoutRootStepsStillRun runs the binary as an unprivileged user, as
// on a laptop: no namespaces, no cgroups to make. A routine that asks for
// nothing still runs (Landlock alone confines it); one with network: false
// is refused, saying how to opt out, and runs once the operator does.
func TestWithoutRootStepsStillRun(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	const nobody = 65534
	base := t.TempDir()
	// The test's temporary directory is root's alone: let nobody through.
	if err := os.Chmod(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(base, "routines.test")
	copyFile(t, os.Args[0], exe)
	project := filepath.Join(base, "project")
	for _, r := range []struct{ name, yaml string }{
		{"plain", "name: plain\nsteps:\n  - id: a\n    run: echo confined-by-landlock-alone\n"},
		{"offline", "name: offline\npermissions: { network: false }\nsteps:\n  - id: a\n    run: echo offline\n"},
	} {
		dir := filepath.Join(project, r.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte(r.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{base, project, filepath.Join(project, "plain"), filepath.Join(project, "offline")} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string) {
		cmd := exec.Command(exe, append([]string{"--project", project}, args...)...)
		cmd.Env = []string{"ROUTINES_TEST_MAIN=1", "PATH=/usr/bin:/bin", "HOME=" + base}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := run("run-once", filepath.Join(project, "plain")); code != 0 || !strings.Contains(out, "confined-by-landlock-alone") {
		t.Fatalf("a plain routine without root: exit %d\n%s", code, out)
	}
	if code, out := run("run-once", filepath.Join(project, "offline")); code != 2 || !strings.Contains(out, "--allow-missing network") {
		t.Fatalf("network: false without network namespaces: exit %d\n%s", code, out)
	}
	if code, out := run("--allow-missing", "network", "run-once", filepath.Join(project, "offline")); code != 0 {
		t.Fatalf("network: false allowed missing: exit %d\n%s", code, out)
	}
	if code, out := run("doctor"); code != 1 || !strings.Contains(out, "MISSING") {
		t.Fatalf("doctor without root: exit %d\n%s", code, out)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
