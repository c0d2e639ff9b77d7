// Package clitest holds helpers for tests that drive the routines command
// line in-process.
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// Buffer is a bytes.Buffer safe for the daemon's goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Stores returns the store drivers the routines binary registers beyond
// the built-in SQLite one.
func Stores() store.Drivers {
	return store.Drivers{"postgres": postgres.OpenURL, "postgresql": postgres.OpenURL}
}

// Kinds returns the step kinds the routines binary registers
// (cmd/routines/main.go).
func Kinds() stepkind.Registry {
	return stepkind.NewRegistry(steps.RunKind{}, steps.StateKind{}, steps.EmitKind{}, steps.SQLKind{}, steps.SlackKind{}, steps.HTTPKind{}, steps.RoutineKind{}, steps.EmailKind{}, steps.LLMKind{}, steps.ClassifyKind{}, steps.AgentKind{})
}

// CopyProject copies the project directory src into a fresh temporary
// directory named after src's base, so a test leaves the checkout alone. It
// removes the copy's .routines/ and the given names (relative to the copy),
// then returns the copy's path.
func CopyProject(t testing.TB, src string, remove ...string) string {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), filepath.Base(abs))
	if err := os.CopyFS(dir, os.DirFS(abs)); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{".routines"}, remove...) {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// RunCLI runs the command line once with Kinds and returns its exit code
// and output.
func RunCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return RunCLIWith(t, cli.Deps{}, args...)
}

// RunCLIWith is RunCLI with deps (stdin, environment), whose Kinds,
// Stores, Stdout and Stderr it fills in.
func RunCLIWith(t testing.TB, deps cli.Deps, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	deps.Kinds, deps.Stores, deps.Stdout, deps.Stderr = Kinds(), Stores(), &out, &errOut
	code = cli.Run(context.Background(), deps, args)
	return code, out.String(), errOut.String()
}

// Serve starts `routines serve dir --addr 127.0.0.1:0 args...` in-process
// with Kinds, waits until the daemon has recorded its address in
// .routines/serve.json and returns that address and the daemon's combined
// stdout and stderr. A cleanup stops the daemon and fails the test unless it
// exits with 0.
func Serve(t testing.TB, dir string, args ...string) (addr string, out *Buffer) {
	t.Helper()
	d := StartServe(t, dir, args...)
	return d.Addr, d.Out
}

// Daemon is a `routines serve`, `server` or `worker` started by
// StartServe or StartRemote.
type Daemon struct {
	Addr string
	Out  *Buffer // its stdout and stderr

	t      testing.TB
	cancel context.CancelFunc
	done   chan int
	code   *int
}

// StartServe is Serve, with a Daemon that Stop ends before the test does
// (a restart: StartServe again on the same directory).
func StartServe(t testing.TB, dir string, args ...string) *Daemon {
	t.Helper()
	return StartServeWith(t, cli.Deps{}, dir, args...)
}

// StartServeWith is StartServe with deps (the environment), whose Kinds,
// Stdout and Stderr it fills in.
func StartServeWith(t testing.TB, deps cli.Deps, dir string, args ...string) *Daemon {
	t.Helper()
	// serve.json of an earlier daemon on the directory is not this one's.
	info := filepath.Join(dir, ".routines", "serve.json")
	os.Remove(info)
	return start(t, deps, append([]string{"serve", dir, "--addr", "127.0.0.1:0"}, args...), func(string) (string, bool) {
		data, err := os.ReadFile(info)
		if err != nil {
			return "", false
		}
		var v struct{ Addr string }
		return v.Addr, json.Unmarshal(data, &v) == nil && v.Addr != ""
	})
}

// upLine is the line `routines server` and `routines worker` print once
// up; a server's names its address.
var upLine = regexp.MustCompile(`(?m)^(?:server on https?://(\S+)|worker) up \(`)

// StartRemote starts `routines server args...` or `routines worker
// args...` (role) in-process with Kinds and waits until it says it is up;
// a server's Daemon has its address. A cleanup stops it and fails the
// test unless it exits with 0.
func StartRemote(t testing.TB, role string, args ...string) *Daemon {
	t.Helper()
	return StartRemoteWith(t, cli.Deps{}, role, args...)
}

// StartRemoteWith is StartRemote with deps (the environment), whose
// Kinds, Stores, Stdout and Stderr it fills in.
func StartRemoteWith(t testing.TB, deps cli.Deps, role string, args ...string) *Daemon {
	t.Helper()
	return start(t, deps, append([]string{role}, args...), nil)
}

// start runs the command line args in-process with deps (whose Kinds,
// Stdout and Stderr it fills in) until its Daemon stops, and waits until
// ready finds it up (ready nil: until it prints upLine).
func start(t testing.TB, deps cli.Deps, args []string, ready func(out string) (addr string, ok bool)) *Daemon {
	t.Helper()
	if ready == nil {
		ready = func(out string) (string, bool) {
			m := upLine.FindStringSubmatch(out)
			if m == nil {
				return "", false
			}
			return m[1], true
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Out: &Buffer{}, t: t, cancel: cancel, done: make(chan int, 1)}
	go func() {
		deps.Kinds, deps.Stores, deps.Stdout, deps.Stderr = Kinds(), Stores(), d.Out, d.Out
		d.done <- cli.Run(ctx, deps, args)
	}()
	t.Cleanup(func() {
		if code := d.Stop(); code != 0 {
			t.Errorf("%s exit %d: %s", args[0], code, d.Out.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if addr, ok := ready(d.Out.String()); ok {
			d.Addr = addr
			return d
		}
		select {
		case code := <-d.done:
			d.code = &code
			t.Fatalf("%s exited with %d: %s", args[0], code, d.Out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %s", args[0], d.Out.String())
		}
	}
}

// Stop stops the daemon as Ctrl-C does (its grace period applies) and
// returns its exit code; a second Stop returns the same.
func (d *Daemon) Stop() int {
	if d.code == nil {
		d.cancel()
		code := <-d.done
		d.code = &code
	}
	return *d.code
}
