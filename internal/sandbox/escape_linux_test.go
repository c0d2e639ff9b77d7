package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The escape suite: each test tries one way out of a step, the way an
// attacker would, and says which layer stopped it.

// helperEnv makes the test binary, started as a step, act as a helper
// (see TestMain) instead of running tests.
const helperEnv = "SANDBOX_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper does one thing a step might try and exits 0 when it worked.
func helper(mode string, args []string) int {
	switch mode {
	case "connect": // family proto addr port: a stream connect
		family := unix.AF_INET
		if args[0] == "6" {
			family = unix.AF_INET6
		}
		proto, _ := strconv.Atoi(args[1])
		port, _ := strconv.Atoi(args[3])
		fd, err := unix.Socket(family, unix.SOCK_STREAM, proto)
		if err != nil {
			fmt.Println("socket:", err)
			return 1
		}
		var sa unix.Sockaddr
		if family == unix.AF_INET {
			a := &unix.SockaddrInet4{Port: port}
			copy(a.Addr[:], net.ParseIP(args[2]).To4())
			sa = a
		} else {
			a := &unix.SockaddrInet6{Port: port}
			copy(a.Addr[:], net.ParseIP(args[2]).To16())
			sa = a
		}
		if err := unix.Connect(fd, sa); err != nil {
			fmt.Println("connect:", err)
			return 1
		}
		return 0
	case "udp": // addr: send a datagram
		c, err := net.Dial("udp", args[0])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		for range 5 {
			if _, err := c.Write([]byte("exfiltrated")); err != nil {
				fmt.Println("write:", err)
				return 1
			}
		}
		return 0
	case "unix": // name: connect to an abstract unix socket
		c, err := net.Dial("unix", "@"+args[0])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		c.Close()
		return 0
	case "spawn": // run a step that prints a setsid grandchild's pid, then hang
		res, err := Run(context.Background(), &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", args[0]},
			Env: []string{"PATH=/usr/bin:/bin"}, Stdout: os.Stdout, Run: args[1], Name: "step",
			Policy: Policy{ReadWrite: []string{args[2]}, Network: true},
		})
		fmt.Println("step ended", res, err)
		return 0
	}
	return 2
}

// helperPolicy lets a step execute the test binary.
func (b *testBundle) helperPolicy(t *testing.T) Policy {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := b.policy()
	p.ReadOnly = []string{filepath.Dir(exe)}
	return p
}

// runHelper runs the test binary as a step in mode, and reports whether
// what it tried worked.
func (b *testBundle) runHelper(t *testing.T, p Policy, mode string, args ...string) bool {
	t.Helper()
	exe, _ := os.Executable()
	b.stdout.Reset()
	res, err := Run(t.Context(), &Command{
		Path: exe, Args: append([]string{"helper"}, args...),
		Env: []string{helperEnv + "=" + mode}, Stdout: &b.stdout, Stderr: &b.stderr, Policy: p,
		Run: t.Name(),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode == 2 {
		t.Fatalf("helper mode %q unknown", mode)
	}
	return res.ExitCode == 0
}

func requireCgroup(t *testing.T) {
	t.Helper()
	if h := hostCgroups(); h.v2 == "" {
		t.Skipf("no cgroup v2 for steps: %v", h.v2Err)
	}
}

func requireNetns(t *testing.T) {
	t.Helper()
	fd, err := newNetns()
	if err != nil {
		t.Skipf("no network namespaces: %v", err)
	}
	unix.Close(fd)
}

// TestEscapeNetworkFalse: with network: false, no IP socket of any kind
// reaches the host, and no abstract unix socket outside the step is
// reachable with or without network. Layer: the run's network namespace
// (and Landlock's scope for abstract sockets).
func TestEscapeNetworkFalse(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	tcp4 := listenTCP(t, "tcp4", "127.0.0.1:0")
	tcp6 := listenTCP(t, "tcp6", "[::1]:0")
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	abstract := fmt.Sprintf("routines-sandbox-test-%d", os.Getpid())
	ul, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	go acceptAll(ul)

	attacks := []struct {
		name string
		mode string
		args []string
	}{
		{"tcp4", "connect", []string{"4", "0", "127.0.0.1", port(tcp4)}},
		{"tcp6", "connect", []string{"6", "0", "::1", port(tcp6)}},
		{"mptcp4", "connect", []string{"4", "262", "127.0.0.1", port(tcp4)}},
		{"mptcp6", "connect", []string{"6", "262", "::1", port(tcp6)}},
		{"abstract-unix", "unix", []string{abstract}},
	}
	for _, a := range attacks {
		for _, network := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/network=%v", a.name, network), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				p := b.helperPolicy(t)
				p.Network = network
				got := b.runHelper(t, p, a.mode, a.args...)
				want := network && a.mode != "unix"
				if got != want {
					t.Fatalf("%s reached the host: %v, want %v (layer: network namespace, Landlock scope); output %q %q",
						a.name, got, want, b.stdout.String(), b.stderr.String())
				}
			})
		}
	}
	t.Run("udp", func(t *testing.T) {
		b := setup(t)
		p := b.helperPolicy(t)
		p.Network = false
		b.runHelper(t, p, "udp", udp.LocalAddr().String())
		_ = udp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 64)
		if n, _, err := udp.ReadFrom(buf); err == nil {
			t.Fatalf("a UDP datagram left the step: %q (layer: network namespace)", buf[:n])
		}
	})
}

func listenTCP(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptAll(ln)
	return ln
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func port(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// TestEscapeDoubleFork: a daemonised process (double fork, setsid, output
// closed) does not outlive its step. Layer: the step's cgroup.
func TestEscapeDoubleFork(t *testing.T) {
	t.Parallel()
	requireCgroup(t)
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(),
		`( setsid bash -c 'readlink /proc/self; exec sleep 100 </dev/null >/dev/null 2>&1' & ) | head -1; exit 0`)
	b.requireExit(t, res, 0)
	requireGone(t, pids(t, b.stdout.String()))
}

// TestEscapeOutlivesEngine: when the engine is SIGKILLed, the step it ran
// dies with it, and what the step left behind (a setsid daemon) is killed
// by KillRun before the run resumes. Layers: Pdeathsig on the step's
// thread, the run's cgroups.
func TestEscapeOutlivesEngine(t *testing.T) {
	t.Parallel()
	requireCgroup(t)
	b := setup(t)
	exe, _ := os.Executable()
	run := fmt.Sprintf("01TESTRUN%d", os.Getpid())
	script := `setsid bash -c 'readlink /proc/self; exec sleep 100 </dev/null >/dev/null 2>&1' & readlink /proc/self; exec sleep 100`
	engine := exec.Command(exe, script, run, b.dir)
	engine.Env = []string{helperEnv + "=spawn"}
	out := &syncBuffer{}
	engine.Stdout = out
	if err := engine.Start(); err != nil {
		t.Fatal(err)
	}
	var ps []int
	deadline := time.Now().Add(10 * time.Second)
	for len(ps) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the step did not start: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
		ps = nil
		for _, f := range strings.Fields(out.String()) {
			if pid, err := strconv.Atoi(f); err == nil {
				ps = append(ps, pid)
			}
		}
	}
	_ = engine.Process.Kill()
	_ = engine.Wait()
	daemon, step := ps[0], ps[1]
	if len(ps) == 2 && !alive(daemon) {
		daemon, step = step, daemon
	}
	requireGone(t, []int{step}) // Pdeathsig
	if err := KillRun(run); err != nil {
		t.Fatal(err)
	}
	requireGone(t, []int{daemon})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestEscapeForkBomb: a fork bomb hits the step's pids limit, fails the
// step with PidsLimited, and leaves the engine able to start threads and
// processes. Layer: the pids cgroup of the step.
func TestEscapeForkBomb(t *testing.T) {
	t.Parallel()
	requireController(t, LayerPids)
	b := setup(t)
	p := b.policy()
	p.Resources.Pids = 64
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res := b.bash(t, ctx, p, `bomb() { bomb | bomb & }; bomb; sleep 1; exit 3`)
	if !res.PidsLimited {
		t.Fatalf("the bomb did not hit the pids limit: %+v (layer: pids cgroup)", res)
	}
	if out, err := exec.Command("/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("the engine cannot start a process after the bomb: %v %s", err, out)
	}
}

// TestEscapeMemoryHog: a step over its memory limit is OOM-killed and
// reported as such; the engine is untouched. Layer: the memory cgroup.
func TestEscapeMemoryHog(t *testing.T) {
	t.Parallel()
	requireController(t, LayerMemory)
	b := setup(t)
	p := b.policy()
	p.Resources.MemoryBytes = 64 << 20
	res := b.bash(t, t.Context(), p, `x=$(head -c 300000000 /dev/zero | tr "\0" a); echo ${#x}`)
	if res.ExitCode == 0 || !res.OOMKilled {
		t.Fatalf("a 300 MB string in a 64 MiB step: %+v (layer: memory cgroup)", res)
	}
	if res.MaxRSSKB > 70<<10 {
		t.Fatalf("peak memory %d KiB over the 64 MiB limit", res.MaxRSSKB)
	}
}

// TestUsageIsTheStepsAlone: CPU time counts every process of the step,
// also those it did not wait for, and peak memory is the step's, not the
// engine's.
func TestUsageIsTheStepsAlone(t *testing.T) {
	t.Parallel()
	requireCgroup(t)
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(),
		`(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done) & disown; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 0.5`)
	b.requireExit(t, res, 0)
	if cpu := res.CPUUser + res.CPUSys; cpu < 200*time.Millisecond {
		t.Logf("CPU %v", cpu) // two loops of ~0.2 s each on an idle machine
	}
	if res.CPUUser+res.CPUSys <= 0 {
		t.Fatalf("no CPU time: %+v", res)
	}
	if h := hostCgroups(); (h.v2Limits[LayerMemory] || h.v1[LayerMemory] != "") && (res.MaxRSSKB <= 0 || res.MaxRSSKB > 64<<10) {
		t.Fatalf("peak memory %d KiB for two shells", res.MaxRSSKB)
	}
}

func requireController(t *testing.T, c string) {
	t.Helper()
	if h := hostCgroups(); !h.v2Limits[c] && h.v1[c] == "" {
		t.Skipf("no %s controller for steps", c)
	}
}

// TestExplicitLimitRefusedWithoutController: a step that sets a limit the
// host cannot enforce is refused, unless the operator allows it.
func TestExplicitLimitRefusedWithoutController(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := &Command{Path: "/bin/true", Policy: b.policy()}
	c.Policy.Resources.CPU = 0.5
	if h := hostCgroups(); h.v2Limits[LayerCPU] || h.v1[LayerCPU] != "" {
		if _, err := Run(t.Context(), c); err != nil {
			t.Fatalf("a CPU limit on a host with the controller: %v", err)
		}
		return
	}
	if _, err := Run(t.Context(), c); err == nil || !strings.Contains(err.Error(), "--allow-missing cpu") {
		t.Fatalf("a CPU limit without the controller: %v", err)
	}
	c.Policy.AllowMissing = []string{LayerCPU}
	if _, err := Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

func requireMountNS(t *testing.T) {
	t.Helper()
	if err := mountNamespaces(); err != nil {
		t.Skipf("no mount namespaces: %v", err)
	}
}

// TestEscapeUnixSocketOutsideGrants: a unix socket at a path outside the
// step's grants (the Docker socket is the classic one) cannot be reached,
// with or without network. Layer: the mount namespace, where the path
// does not exist.
func TestEscapeUnixSocketOutsideGrants(t *testing.T) {
	t.Parallel()
	requireMountNS(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptAll(ln)
	for _, network := range []bool{true, false} {
		b := setup(t)
		p := b.policy()
		p.Network = network
		script := `exec 3<>/dev/null; python3 -c 1 2>/dev/null; ` +
			`if [ -e ` + sock + ` ]; then echo visible; fi; ` +
			`ls ` + filepath.Dir(sock) + ` 2>/dev/null && echo listed; true`
		res := b.bash(t, t.Context(), p, script)
		b.requireExit(t, res, 0)
		if out := b.stdout.String(); out != "" {
			t.Fatalf("network=%v: the socket outside the grants is there: %q (layer: mount namespace)", network, out)
		}
	}
}

// TestEscapeStateDirHidden: a routine at the project root cannot read the
// project's store or vault key, nor other runs' workspaces, though they
// lie inside its directory; its own workspace works. Layer: the mount
// namespace's hidden path.
func TestEscapeStateDirHidden(t *testing.T) {
	t.Parallel()
	requireMountNS(t)
	b := setup(t)
	state := filepath.Join(b.dir, ".routines")
	ws := filepath.Join(state, "runs", "01MINE")
	other := filepath.Join(state, "runs", "01OTHER")
	for _, d := range []string{ws, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(state, "master.key"), filepath.Join(state, "state.db"), filepath.Join(other, "secret.txt")} {
		if err := os.WriteFile(f, []byte("TOP-SECRET"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := Policy{ReadWrite: []string{b.dir, ws}, Hide: []string{state}, Network: true}
	script := `cat .routines/master.key .routines/state.db .routines/runs/01OTHER/secret.txt 2>/dev/null; ` +
		`ls -A .routines .routines/runs; echo mine > .routines/runs/01MINE/out.txt; ` +
		`echo planted > .routines/planted 2>/dev/null; true`
	res := b.bash(t, t.Context(), p, script)
	b.requireExit(t, res, 0)
	out := b.stdout.String()
	if strings.Contains(out, "TOP-SECRET") || strings.Contains(out, "01OTHER") || strings.Contains(out, "master.key") {
		t.Fatalf("the step reached the project's .routines: %q (layer: mount namespace)", out)
	}
	if got, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(got) != "mine\n" {
		t.Fatalf("the step's own workspace: %q, %v", got, err)
	}
	requireAbsent(t, filepath.Join(state, "planted"))
}

// TestEscapeProcShowsOwnProcesses: /proc lists a step's own processes,
// not the engine's nor another step's, so their command lines stay
// unread. Layer: the mount namespace's /proc (hidepid=ptraceable, which
// Landlock's ptrace rule decides).
func TestEscapeProcShowsOwnProcesses(t *testing.T) {
	t.Parallel()
	requireMountNS(t)
	b := setup(t)
	other := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	otherPid := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := &firstWrite{lines: otherPid}
		_, _ = Run(ctx, &Command{Path: "/bin/bash", Args: []string{"bash", "-c", "readlink /proc/self; exec sleep 100 --secret-arg"},
			Stdout: w, Policy: other.policy(), Run: "01OTHERRUN"})
	}()
	var pid string
	select {
	case pid = <-otherPid:
	case <-time.After(10 * time.Second):
		t.Fatal("the other step did not start")
	}
	script := fmt.Sprintf(`sleep 5 & mine=$(readlink /proc/self); ls /proc | grep -E '^[0-9]+$' | tr '\n' ' '; echo; `+
		`cat /proc/%s/cmdline /proc/%d/cmdline 2>/dev/null; echo; echo self=$mine`, strings.TrimSpace(pid), os.Getpid())
	res := b.bash(t, t.Context(), b.policy(), script)
	b.requireExit(t, res, 0)
	out := b.stdout.String()
	listed := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if slices.Contains(listed, strings.TrimSpace(pid)) || slices.Contains(listed, strconv.Itoa(os.Getpid())) || strings.Contains(out, "secret-arg") {
		t.Fatalf("the step sees other processes: %q (layer: /proc of the mount namespace)", out)
	}
	if len(listed) < 2 {
		t.Fatalf("the step does not see its own processes: %q", out)
	}
	cancel()
	<-done
}

// firstWrite sends the first write made to it.
type firstWrite struct {
	lines chan string
	sent  bool
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if !w.sent {
		w.sent = true
		w.lines <- string(p)
	}
	return len(p), nil
}

// TestEscapeHostPathsAbsent: what the step was not granted is not there:
// the host's /tmp, /root, /home, /run, /var.
func TestEscapeHostPathsAbsent(t *testing.T) {
	t.Parallel()
	requireMountNS(t)
	b := setup(t)
	res := b.bash(t, t.Context(), b.policy(), `for p in /root /home /run /var /srv /mnt /boot; do [ -e $p ] && echo $p; done; ls -A /tmp; true`)
	b.requireExit(t, res, 0)
	if out := b.stdout.String(); out != "" {
		t.Fatalf("host paths in the step's file system: %q (layer: mount namespace)", out)
	}
}

// TestRequireRefusesMissingLayers: a routine that asks for a layer the
// host lacks is refused, naming the layer and the opt-out, unless the
// operator allowed it to be missing.
func TestRequireRefusesMissingLayers(t *testing.T) {
	t.Parallel()
	layers := []LayerStatus{
		{Name: LayerNetwork, Detail: "new network namespaces are refused", Fix: "run as root"},
		{Name: LayerMemory, Active: true},
	}
	err := require(layers, []string{LayerMemory, LayerNetwork}, nil)
	if err == nil || !strings.Contains(err.Error(), "needs the network layer") || !strings.Contains(err.Error(), "--allow-missing network") {
		t.Fatalf("network: false on a host without network namespaces: %v", err)
	}
	if err := require(layers, []string{LayerMemory, LayerNetwork}, []string{LayerNetwork}); err != nil {
		t.Fatalf("allowed missing: %v", err)
	}
	if err := require(layers, []string{LayerMemory}, nil); err != nil {
		t.Fatalf("an active layer: %v", err)
	}
}

// TestEscapePlantedGrantLink: a relative grant that a step replaced with
// a link (to widen the next run's grants) is refused. Layer: the policy
// check before the jail is built.
func TestEscapePlantedGrantLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "key"), []byte("TOP-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	// What a step of an earlier run did: data/ became a link.
	if err := os.Symlink(secret, filepath.Join(b.dir, "data")); err != nil {
		t.Fatal(err)
	}
	p := b.policy()
	p.ReadOnly = []string{filepath.Join(b.dir, "data")}
	_, err := Run(t.Context(), &Command{Path: "/bin/cat", Args: []string{"cat", "data/key"}, Dir: b.dir, Stdout: &b.stdout, Policy: p})
	if err == nil || !strings.Contains(err.Error(), "goes through a link") || strings.Contains(b.stdout.String(), "TOP-SECRET") {
		t.Fatalf("a planted grant link: %v, stdout %q (layer: policy check)", err, b.stdout.String())
	}
}
