package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testBundle is a routine directory, confined to by default, and what a
// child wrote.
type testBundle struct {
	dir            string
	stdout, stderr bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	if _, err := Check(); err != nil {
		t.Skipf("no Landlock: %v", err)
	}
	return &testBundle{dir: t.TempDir()}
}

// policy confines to the bundle's directory, network allowed.
func (b *testBundle) policy() Policy {
	return Policy{ReadWrite: []string{b.dir}, Network: true}
}

// bash runs script under p and fails the test on an error from Run.
func (b *testBundle) bash(t *testing.T, ctx context.Context, p Policy, script string) *Result {
	t.Helper()
	res, err := Run(ctx, &Command{
		Path:   "/bin/bash",
		Args:   []string{"bash", "-c", script},
		Dir:    b.dir,
		Env:    []string{"PATH=/usr/bin:/bin"},
		Stdout: &b.stdout,
		Stderr: &b.stderr,
		Policy: p,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func (b *testBundle) requireExit(t *testing.T, res *Result, want int) {
	t.Helper()
	if res.ExitCode != want {
		t.Fatalf("exit code %d (signal %q), want %d; stdout %q, stderr %q",
			res.ExitCode, res.Signal, want, b.stdout.String(), b.stderr.String())
	}
}

func requireAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: want absent, stat says %v", path, err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	abi, err := Check()
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Check error %v does not wrap ErrUnavailable", err)
		}
		t.Skipf("no Landlock: %v", err)
	}
	if abi < 1 {
		t.Fatalf("abi %d", abi)
	}
	if again, _ := Check(); again != abi {
		t.Fatalf("second Check %d, first %d", again, abi)
	}
}

func TestReadWriteInsideRoutineDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), `mkdir sub && echo hello > sub/f && cat sub/f && mv sub/f g && rm -r sub`)
	b.requireExit(t, res, 0)
	if got, _ := os.ReadFile(filepath.Join(b.dir, "g")); string(got) != "hello\n" {
		t.Fatalf("file holds %q", got)
	}
	if b.stdout.String() != "hello\n" {
		t.Fatalf("stdout %q", b.stdout.String())
	}
}

func TestCannotWriteSiblingDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	outside := filepath.Join(t.TempDir(), "f")
	res := b.bash(t, t.Context(), b.policy(), "echo x > "+outside)
	if res.ExitCode == 0 {
		t.Fatal("write outside the routine dir succeeded")
	}
	requireAbsent(t, outside)
}

func TestCannotWriteTmp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := fmt.Sprintf("/tmp/routines-sandbox-test-%d", time.Now().UnixNano())
	res := b.bash(t, t.Context(), b.policy(), "echo x > "+path)
	if res.ExitCode == 0 {
		t.Fatal("write to /tmp succeeded")
	}
	requireAbsent(t, path)
}

func TestCannotReadUnlistedDir(t *testing.T) {
	t.Parallel()
	b := setup(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := b.bash(t, t.Context(), b.policy(), "cat "+secret)
	if res.ExitCode == 0 || strings.Contains(b.stdout.String(), "s3cret") {
		t.Fatalf("read of an unlisted dir succeeded: %q", b.stdout.String())
	}
}

func TestExtraReadWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	extra := t.TempDir()
	p := b.policy()
	p.ReadWrite = append(p.ReadWrite, extra)
	res := b.bash(t, t.Context(), p, "echo out > "+extra+"/f")
	b.requireExit(t, res, 0)
	if got, _ := os.ReadFile(filepath.Join(extra, "f")); string(got) != "out\n" {
		t.Fatalf("file holds %q", got)
	}
}

func TestExtraReadWriteFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := t.TempDir()
	file := filepath.Join(other, "allowed")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := b.policy()
	p.ReadWrite = append(p.ReadWrite, file)
	res := b.bash(t, t.Context(), p, "echo ok > "+file+" && ! echo no > "+other+"/beside")
	b.requireExit(t, res, 0)
	if got, _ := os.ReadFile(file); string(got) != "ok\n" {
		t.Fatalf("file holds %q", got)
	}
	requireAbsent(t, filepath.Join(other, "beside"))
}

func TestExtraReadOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ro := t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := b.policy()
	p.ReadOnly = []string{ro}
	res := b.bash(t, t.Context(), p, "cat "+ro+"/f")
	b.requireExit(t, res, 0)
	if b.stdout.String() != "data" {
		t.Fatalf("stdout %q", b.stdout.String())
	}

	res = b.bash(t, t.Context(), p, "echo x > "+ro+"/g || exit 7; echo y >> "+ro+"/f")
	b.requireExit(t, res, 7)
	requireAbsent(t, filepath.Join(ro, "g"))
	if got, _ := os.ReadFile(filepath.Join(ro, "f")); string(got) != "data" {
		t.Fatalf("read-only file now holds %q", got)
	}
}

func TestSystemPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	script := `set -e
ls /dev > /dev/null
echo discard > /dev/null
head -c 16 /dev/urandom | wc -c
echo to-stdout > /dev/stdout
cat /etc/hostname /proc/self/status > /dev/null
printf '#!/bin/sh\necho script ran\n' > s.sh && chmod +x s.sh && ./s.sh
grep -E 'NoNewPrivs|CapEff|CapPrm' /proc/self/status
`
	res := b.bash(t, t.Context(), b.policy(), script)
	b.requireExit(t, res, 0)
	for _, want := range []string{"16\n", "to-stdout\n", "script ran\n", "NoNewPrivs:\t1\n",
		"CapPrm:\t0000000000000000\n", "CapEff:\t0000000000000000\n"} {
		if !strings.Contains(b.stdout.String(), want) {
			t.Errorf("stdout %q lacks %q", b.stdout.String(), want)
		}
	}
}

func TestCannotMakeDeviceNodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), "mknod nullcopy c 1 3")
	if res.ExitCode == 0 {
		t.Fatal("mknod in the routine dir succeeded")
	}
	requireAbsent(t, filepath.Join(b.dir, "nullcopy"))
}

func TestPolicyPathErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []Policy{
		{ReadWrite: []string{"relative/dir"}, Network: true},
		{ReadOnly: []string{filepath.Join(b.dir, "missing")}, Network: true},
	} {
		_, err := Run(t.Context(), &Command{Path: "/bin/true", Policy: p})
		if err == nil {
			t.Errorf("policy %+v: Run succeeded", p)
		}
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	abi := 0
	if v, err := Check(); err == nil {
		abi = v
	}
	if abi < 4 {
		t.Skipf("Landlock ABI %d cannot deny network access", abi)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected", port)
	for _, network := range []bool{false, true} {
		t.Run(fmt.Sprintf("network=%v", network), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.policy()
			p.Network = network
			res := b.bash(t, t.Context(), p, script)
			connected := res.ExitCode == 0 && b.stdout.String() == "connected\n"
			if connected != network {
				t.Fatalf("connected %v, want %v; stderr %q", connected, network, b.stderr.String())
			}
		})
	}
}

func TestCannotTouchEngine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if abi, _ := Check(); abi < 6 {
		t.Skipf("Landlock ABI %d cannot scope signals", abi)
	}
	// $PPID is this test process. Signal 0 checks permission only.
	script := `kill -0 $PPID && echo signalled; cat /proc/$PPID/environ > /dev/null && echo read-environ; true`
	res := b.bash(t, t.Context(), b.policy(), script)
	b.requireExit(t, res, 0)
	if b.stdout.String() != "" {
		t.Fatalf("a confined step reached the engine: %q", b.stdout.String())
	}

}

func TestCannotReadAnotherStepsEnv(t *testing.T) {
	t.Parallel()
	other := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = Run(ctx, &Command{
			Path:   "/bin/bash",
			Args:   []string{"bash", "-c", "echo $$ > pid.tmp && mv pid.tmp pid && exec sleep 100"},
			Dir:    other.dir,
			Env:    []string{"SECRET=hunter2"},
			Policy: other.policy(),
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var pid []byte
	for deadline := time.Now().Add(5 * time.Second); len(pid) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other step did not start")
		}
		pid, _ = os.ReadFile(filepath.Join(other.dir, "pid"))
	}

	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), "cat /proc/"+strings.TrimSpace(string(pid))+"/environ")
	if res.ExitCode == 0 || strings.Contains(b.stdout.String(), "hunter2") {
		t.Fatalf("a step read another step's environment: %q", b.stdout.String())
	}
}

// alive reports whether pid runs; a zombie does not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i+2 < len(stat) && stat[i+2] != 'Z'
}

// requireGone waits a little for the processes to be gone.
func requireGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// pids parses the pids a script printed, one a line.
func pids(t *testing.T, out string) []int {
	t.Helper()
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		t.Fatal("the script printed no pid")
	}
	return pids
}

func TestTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := b.bash(t, ctx, b.policy(), `sleep 100 & echo $!; sleep 100 & echo $!; echo $$; wait`)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %v after a 300ms timeout", took)
	}
	if res.ExitCode != -1 || res.Signal != "terminated" {
		t.Fatalf("exit %d signal %q, want -1 terminated", res.ExitCode, res.Signal)
	}
	ps := pids(t, b.stdout.String())
	if len(ps) != 3 {
		t.Fatalf("pids %v", ps)
	}
	requireGone(t, ps)
	for _, pid := range ps {
		if err := unix.Kill(pid, 0); err != nil && err != unix.ESRCH {
			t.Errorf("kill(%d, 0): %v", pid, err)
		}
	}
}

func TestKillGraceForcesKill(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The deadline starts once the script ignores SIGTERM (it says so by
	// printing its child's pid), however long bash takes to start on a
	// loaded machine.
	ready := &firstLine{seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	go func() {
		<-ready.seen
		time.Sleep(100 * time.Millisecond)
		cancelled = time.Now()
		cancel()
	}()
	res, err := Run(ctx, &Command{
		Path:      "/bin/bash",
		Args:      []string{"bash", "-c", `trap "" TERM; sleep 100 & echo $!; wait`},
		Stdout:    ready,
		Policy:    b.policy(),
		KillGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(cancelled); took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Run returned %v after the cancel, want about the 200ms grace", took)
	}
	if res.Signal != "killed" {
		t.Fatalf("signal %q, want killed", res.Signal)
	}
	requireGone(t, pids(t, ready.String()))
}

// firstLine is a writer that closes seen at its first line.
type firstLine struct {
	mu   sync.Mutex
	b    bytes.Buffer
	seen chan struct{}
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	had := bytes.Contains(f.b.Bytes(), []byte("\n"))
	f.b.Write(p)
	if !had && bytes.Contains(f.b.Bytes(), []byte("\n")) {
		close(f.seen)
	}
	return len(p), nil
}

func (f *firstLine) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.String()
}

func TestLeftoversKilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Now()
	// The background sleep keeps stdout open: Run must not wait for it.
	res := b.bash(t, t.Context(), b.policy(), `sleep 100 & echo $!; exit 0`)
	b.requireExit(t, res, 0)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %v", took)
	}
	requireGone(t, pids(t, b.stdout.String()))
}

// TestEscapeSetsidKilled: a process that leaves the step's process group
// neither holds up Run nor outlives the step: the step's cgroup is killed
// whole.
func TestEscapeSetsidKilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	requireCgroup(t)
	start := time.Now()
	res, err := Run(t.Context(), &Command{
		Path:      "/bin/bash",
		Args:      []string{"bash", "-c", `setsid sleep 100 & echo $!; sleep 0.1`},
		Env:       []string{"PATH=/usr/bin:/bin"},
		Stdout:    &b.stdout,
		Policy:    b.policy(),
		KillGrace: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.requireExit(t, res, 0)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %v with an escaped process holding stdout", took)
	}
	requireGone(t, pids(t, b.stdout.String()))
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), "exit 3")
	b.requireExit(t, res, 3)
	if res.Signal != "" {
		t.Fatalf("signal %q", res.Signal)
	}
}

func TestSignal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), "kill -KILL $$")
	if res.ExitCode != -1 || res.Signal != "killed" {
		t.Fatalf("exit %d signal %q, want -1 killed", res.ExitCode, res.Signal)
	}
}

func TestOutput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), "echo out; echo err >&2")
	b.requireExit(t, res, 0)
	if b.stdout.String() != "out\n" || b.stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", b.stdout.String(), b.stderr.String())
	}

	var both bytes.Buffer
	_, err := Run(t.Context(), &Command{
		Path:   "/bin/bash",
		Args:   []string{"bash", "-c", "echo a; echo b >&2; echo c"},
		Stdout: &both,
		Stderr: &both,
		Policy: b.policy(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if both.String() != "a\nb\nc\n" {
		t.Fatalf("shared writer got %q", both.String())
	}
}

func TestOutputToFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The engine's log file lies outside the step's paths: the child gets
	// the open descriptor, not the path.
	log, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	_, err = Run(t.Context(), &Command{Path: "/bin/echo", Args: []string{"echo", "logged"}, Stdout: log, Policy: b.policy()})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(log.Name()); string(got) != "logged\n" {
		t.Fatalf("log holds %q", got)
	}
}

func TestRusage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`)
	b.requireExit(t, res, 0)
	if res.CPUUser+res.CPUSys <= 0 || res.MaxRSSKB <= 0 || res.Duration <= 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy()
	p.MemoryBytes = 100 << 20
	res := b.bash(t, t.Context(), p, `x=$(head -c 1000000 /dev/zero | tr "\0" a); echo ${#x}`)
	b.requireExit(t, res, 0)

	res = b.bash(t, t.Context(), p, `x=$(head -c 300000000 /dev/zero | tr "\0" a); echo ${#x}`)
	if res.ExitCode == 0 {
		t.Fatalf("a 300MB string fit in 100MiB; stdout %q", b.stdout.String())
	}

	// Raising the hard limit takes CAP_SYS_RESOURCE, which a confined step
	// lacks even when the engine runs as root.
	res = b.bash(t, t.Context(), p, `ulimit -v unlimited`)
	if res.ExitCode == 0 {
		t.Fatal("the step lifted its memory limit")
	}
}

func TestLimitsApplyBeforeTheProgramRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 20 {
		p := b.policy()
		p.MemoryBytes = 100 << 20
		p.CPUSeconds = 5
		p.Unconfined = i%2 == 1
		b.stdout.Reset()
		res := b.bash(t, t.Context(), p, `ulimit -Hv; ulimit -St`)
		b.requireExit(t, res, 0)
		if b.stdout.String() != "102400\n5\n" {
			t.Fatalf("run %d: the first command saw limits %q", i, b.stdout.String())
		}
	}
}

func TestCPULimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.policy()
	p.CPUSeconds = 1
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res := b.bash(t, ctx, p, `while :; do :; done`)
	if res.Signal != "CPU time limit exceeded" {
		t.Fatalf("exit %d signal %q, want CPU time limit exceeded", res.ExitCode, res.Signal)
	}
	// The kernel samples CPU time by ticks: what it reports may fall short
	// of the limit it enforced.
	if cpu := res.CPUUser + res.CPUSys; cpu < 500*time.Millisecond || cpu > 3*time.Second {
		t.Fatalf("CPU %v, want about 1s", cpu)
	}
}

func TestUnconfined(t *testing.T) {
	t.Parallel()
	b := &testBundle{dir: t.TempDir()}
	outside := filepath.Join(t.TempDir(), "f")
	res := b.bash(t, t.Context(), Policy{Unconfined: true}, "echo x > "+outside)
	b.requireExit(t, res, 0)
	if _, err := os.Stat(outside); err != nil {
		t.Fatal(err)
	}
}

func TestEnvIsExactlyGiven(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, env := range [][]string{{"A=1", "B=two words", "ROUTINES_OUTPUT=/x"}, nil} {
		var out bytes.Buffer
		_, err := Run(t.Context(), &Command{Path: "/usr/bin/env", Args: []string{"env", "-0"}, Env: env, Stdout: &out, Policy: b.policy()})
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		for _, kv := range env {
			want += kv + "\x00"
		}
		if out.String() != want {
			t.Fatalf("env %q, want %q", out.String(), want)
		}
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := Run(t.Context(), &Command{Path: filepath.Join(b.dir, "missing"), Policy: b.policy()}); err == nil {
		t.Error("Run of a missing program succeeded")
	}
	// Executable, but outside every path the step may execute.
	prog := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), &Command{Path: prog, Policy: b.policy()}); err == nil {
		t.Error("Run of a program outside the policy succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, &Command{Path: "/bin/true", Policy: b.policy()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done context: %v", err)
	}
}

// TestNoDescriptorLeak is not parallel: other tests open descriptors too.
func TestNoDescriptorLeak(t *testing.T) {
	b := setup(t)
	count := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(fds)
	}
	b.bash(t, t.Context(), b.policy(), "true") // opens what is opened once
	before := count()
	for range 20 {
		b.bash(t, t.Context(), b.policy(), "echo out; echo err >&2; sleep 10 &")
		_, _ = Run(t.Context(), &Command{Path: "/nonexistent", Stdout: &b.stdout, Policy: b.policy()})
	}
	if after := count(); after != before {
		t.Fatalf("%d descriptors open, %d before", after, before)
	}
}

// TestEngineStaysUnconfined starts many confined children, then checks that
// this process, and children it starts without the package, are free.
// Not parallel: the step threads of parallel tests carry no_new_privs for
// as long as their steps run, and go test runs a serial test before it
// resumes any parallel one.
func TestEngineStaysUnconfined(t *testing.T) {
	b := setup(t)
	for range 100 {
		if _, err := Run(t.Context(), &Command{Path: "/bin/true", Policy: b.policy()}); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(outside, fmt.Sprint("engine", i)), nil, 0o644); err != nil {
			t.Fatalf("the engine cannot write outside the step's paths: %v", err)
		}
		f := filepath.Join(outside, fmt.Sprint("child", i))
		if out, err := exec.Command("/bin/sh", "-c", "echo x > "+f).CombinedOutput(); err != nil {
			t.Fatalf("a plain child of the engine is confined: %v %s", err, out)
		}
	}
	// A thread that carried a domain ended with its goroutine, a moment
	// after Run returned.
	deadline := time.Now().Add(2 * time.Second)
	for {
		confined := confinedThreads(t)
		if len(confined) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: the engine's threads have no_new_privs set", confined)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// confinedThreads lists the threads of the test process with no_new_privs.
func confinedThreads(t *testing.T) []string {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	var confined []string
	for _, status := range tasks {
		data, err := os.ReadFile(status)
		if err != nil {
			continue // the thread ended
		}
		if bytes.Contains(data, []byte("NoNewPrivs:\t1")) {
			confined = append(confined, status)
		}
	}
	return confined
}
