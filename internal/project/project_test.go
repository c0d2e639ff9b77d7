package project

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A child process of the test binary that takes the daemon lock of the
// project in $PROJECT_TEST_DAEMON, publishes a record, says "up" and
// waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("PROJECT_TEST_DAEMON"); dir != "" {
		l, err := Project{Dir: dir}.LockDaemon()
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		if err := l.Publish(Daemon{Addr: "127.0.0.1:9", PID: os.Getpid(), Started: time.Now(), Serving: dir}); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString("up\n")
		time.Sleep(time.Hour) // until killed (a bare select{} would end as a deadlock)
	}
	os.Exit(m.Run())
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindRule(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outer := filepath.Join(root, "outer")
	inner := filepath.Join(outer, "a", "b")
	other := filepath.Join(root, "other", "c")
	mkdirs(t, filepath.Join(outer, StateDirName), inner, other)

	cases := []struct {
		name, named, start, want string
		how                      How
	}{
		{"nearest .routines upwards", "", inner, outer, Found},
		{"the directory itself", "", outer, outer, Found},
		{"none above: the start", "", other, other, Started},
		{"named wins", other, inner, other, Named},
	}
	for _, c := range cases {
		p, err := Find(c.named, c.start)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.Dir != c.want || p.How != c.how {
			t.Errorf("%s: Find(%q, %q) = %s (%s), want %s (%s)", c.name, c.named, c.start, p.Dir, p.How, c.want, c.how)
		}
	}
	if _, err := Find(filepath.Join(root, "missing"), "."); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a named project that does not exist: %v", err)
	}
}

func TestCreateSaysWhetherItMadeTheProject(t *testing.T) {
	t.Parallel()
	p := Project{Dir: t.TempDir()}
	if made, err := p.Create(); err != nil || !made {
		t.Fatalf("first Create = %v, %v; want true", made, err)
	}
	if made, err := p.Create(); err != nil || made {
		t.Fatalf("second Create = %v, %v; want false", made, err)
	}
	if info, err := os.Stat(p.StateDir()); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v; want mode 0700", info, err)
	}
}

func TestOneDaemonPerProject(t *testing.T) {
	t.Parallel()
	p := Project{Dir: t.TempDir()}
	if _, state, err := p.Daemon(); err != nil || state != DaemonNone {
		t.Fatalf("before any daemon: %s, %v", state, err)
	}
	first, err := p.LockDaemon()
	if err != nil {
		t.Fatal(err)
	}
	if _, state, _ := p.Daemon(); state != DaemonStarting {
		t.Fatalf("locked, no record: %s; want starting", state)
	}
	if _, err := p.Running(); !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("Running while starting: %v", err)
	}
	rec := Daemon{Addr: "127.0.0.1:7070", PID: os.Getpid(), Started: time.Now(), Serving: p.Dir}
	if err := first.Publish(rec); err != nil {
		t.Fatal(err)
	}
	if d, err := p.Running(); err != nil || d.URL() != "http://127.0.0.1:7070" {
		t.Fatalf("Running when up = %+v, %v", d, err)
	}
	_, err = p.LockDaemon()
	var running *RunningError
	if !errors.As(err, &running) || running.Other.PID != os.Getpid() {
		t.Fatalf("second daemon: %v; want a RunningError naming pid %d", err, os.Getpid())
	}
	for _, want := range []string{"another daemon serves project " + p.Dir, "127.0.0.1:7070", "kill"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second daemon's error %q lacks %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, state, _ := p.Daemon(); state != DaemonNone {
		t.Fatalf("after release: %s", state)
	}
	again, err := p.LockDaemon()
	if err != nil {
		t.Fatalf("after release, a new daemon: %v", err)
	}
	again.Release()
}

// A daemon killed with SIGKILL leaves its record behind: the record is
// stale, said with its pid, and a new daemon starts.
func TestKilledDaemonIsStale(t *testing.T) {
	t.Parallel()
	p := Project{Dir: t.TempDir()}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROJECT_TEST_DAEMON="+p.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "up\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child daemon said %q", line)
	}
	if _, state, _ := p.Daemon(); state != DaemonUp {
		t.Fatalf("child holds the lock: %s; want up", state)
	}
	if _, err := p.LockDaemon(); err == nil {
		t.Fatal("a second daemon took the lock of a live one")
	}
	cmd.Process.Kill()
	cmd.Wait()

	d, state, err := p.Daemon()
	if err != nil || state != DaemonStale || d.PID != cmd.Process.Pid {
		t.Fatalf("after SIGKILL: %+v %s %v; want stale with pid %d", d, state, err, cmd.Process.Pid)
	}
	_, err = p.Running()
	if !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "gone (killed or crashed)") || !strings.Contains(err.Error(), p.RecordPath()) {
		t.Fatalf("Running of a stale record: %v", err)
	}
	l, err := p.LockDaemon()
	if err != nil {
		t.Fatalf("a new daemon after the stale one: %v", err)
	}
	l.Release()
}
