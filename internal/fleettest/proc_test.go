//go:build linux

package fleettest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the routines binary the tests run, built once per test
// binary by build.
var binary struct {
	once sync.Once
	path string
	err  error
}

// build builds cmd/routines once, into a directory removed when the test
// binary exits (TestMain), and returns its path. It takes as long as it
// takes: a minute or two on a cold build cache.
func build(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "fleettest-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "routines")
		args := append([]string{"build", "-o", binary.path}, raceFlags...)
		cmd := exec.Command("go", append(args, "github.com/routines-dev/routines/cmd/routines")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// proc is one incarnation of a server or worker: a process in a group of
// its own, its output in a log file.
type proc struct {
	name   string // server-1, worker-2 …: a machine, which keeps its directories across restarts
	log    string
	cmd    *exec.Cmd
	addr   string // a server's, once up
	exited chan struct{}
}

// upLine is what a server or worker prints once it serves.
var upLine = regexp.MustCompile(`(?m)^(?:server on http://(\S+)|worker) up \(`)

// spawn starts the binary as name with args, and waits until it says it
// is up.
func (f *fleet) spawn(name string, args ...string) *proc {
	f.t.Helper()
	f.mu.Lock()
	f.incarnations[name]++
	n := f.incarnations[name]
	f.mu.Unlock()
	logPath := filepath.Join(f.dir, "logs", fmt.Sprintf("%s.%d.log", name, n))
	out, err := os.Create(logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(f.bin, args...)
	cmd.Env = f.env
	cmd.Stdout, cmd.Stderr = out, out
	// Its own group, so that a kill takes the whole machine: the process
	// and anything it started. Pdeathsig: gone with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(logPath)
		if m := upLine.FindSubmatch(data); m != nil {
			p.addr = string(m[1])
			return p
		}
		select {
		case <-p.exited:
			f.t.Fatalf("%s exited before it was up: %s\n%s", name, cmd.ProcessState, data)
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s not up in 30s:\n%s", name, data)
		}
	}
}

// kill kills the process and all it started with SIGKILL, as a machine
// that loses power, and waits until it is gone.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
