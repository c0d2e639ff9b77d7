package sandbox

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartConfinesTheChildOnly starts a long-lived child with exec.Cmd:
// it reads inside its directory but not outside, while the engine still
// reads both.
func TestStartConfinesTheChildOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	inside := filepath.Join(b.dir, "data.txt")
	for _, f := range []string{outside, inside} {
		if err := os.WriteFile(f, []byte("content of "+filepath.Base(f)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := b.policy()
	run := func(path string) (string, error) {
		var out bytes.Buffer
		cmd := exec.Command("/bin/cat", path)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		stop, err := Start(&p, "01STARTRUN", "cat", cmd.SysProcAttr, cmd.Start)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		defer stop()
		err = cmd.Wait()
		return out.String(), err
	}
	if out, err := run(inside); err != nil || out != "content of data.txt\n" {
		t.Fatalf("inside: %q, %v", out, err)
	}
	// Missing in the run's mount namespace, or denied by Landlock.
	if out, err := run(outside); err == nil || !strings.Contains(out, "Permission denied") && !strings.Contains(out, "No such file") {
		t.Fatalf("outside: %q, %v; want it refused", out, err)
	}
	if _, err := os.ReadFile(outside); err != nil {
		t.Fatalf("the engine lost access: %v", err)
	}
}

// TestEscapeStartedServerNetworkAndLeftovers: a long-lived child with
// network: false has no network (its run's network namespace), and what
// it leaves behind, out of its process group, dies with stop. Layers: the
// network namespace and the child's cgroup.
func TestEscapeStartedServerNetworkAndLeftovers(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	requireCgroup(t)
	b := setup(t)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	p := b.policy()
	p.Network = false
	var out bytes.Buffer
	cmd := exec.Command("/bin/bash", "-c", `setsid bash -c 'readlink /proc/self; exec sleep 100' & sleep 0.2; echo x > /dev/udp/`+strings.Replace(udp.LocalAddr().String(), ":", "/", 1)+`; wait`)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stop, err := Start(&p, "01STARTRUN2", "server", cmd.SysProcAttr, cmd.Start)
	if err != nil {
		t.Fatal(err)
	}
	_ = udp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 16)
	if n, _, err := udp.ReadFrom(buf); err == nil {
		t.Fatalf("a datagram left the server: %q (layer: network namespace)", buf[:n])
	}
	_ = cmd.Process.Kill()
	stop() // before Wait: the setsid sleep holds the output pipe Wait drains
	_ = cmd.Wait()
	requireGone(t, pids(t, strings.Fields(out.String())[0]))
}
