package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forEachWait runs f with the child's exit waited for through a pidfd, and
// without one, as on a kernel older than 5.3.
func forEachWait(t *testing.T, f func(t *testing.T, run func(context.Context, *Command) (*Result, error))) {
	for _, pidfd := range []bool{true, false} {
		t.Run(fmt.Sprintf("pidfd=%v", pidfd), func(t *testing.T) {
			t.Parallel()
			if pidfd && !pidfdWorks() {
				t.Skip("no pidfd")
			}
			f(t, func(ctx context.Context, c *Command) (*Result, error) { return run(ctx, c, pidfd) })
		})
	}
}

// TestOutputLarge checks every byte of outputs much larger than a pipe,
// on two streams at once, in order.
func TestOutputLarge(t *testing.T) {
	t.Parallel()
	forEachWait(t, func(t *testing.T, run func(context.Context, *Command) (*Result, error)) {
		b := setup(t)
		script := `for i in $(seq 1 20000); do echo "out line $i"; echo "err line $i" >&2; done; echo tail`
		res, err := run(t.Context(), &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
			Stdout: &b.stdout, Stderr: &b.stderr, Policy: b.policy(),
		})
		if err != nil {
			t.Fatal(err)
		}
		b.requireExit(t, res, 0)
		var wantOut, wantErr strings.Builder
		for i := 1; i <= 20000; i++ {
			fmt.Fprintf(&wantOut, "out line %d\n", i)
			fmt.Fprintf(&wantErr, "err line %d\n", i)
		}
		wantOut.WriteString("tail\n")
		if b.stdout.String() != wantOut.String() {
			t.Errorf("stdout: %d bytes, want %d", b.stdout.Len(), wantOut.Len())
		}
		if b.stderr.String() != wantErr.String() {
			t.Errorf("stderr: %d bytes, want %d", b.stderr.Len(), wantErr.Len())
		}
	})
}

// TestOutputOfLeftovers: what the group wrote before the child exited is
// kept, and the pipes a killed background job held do not delay Run, also
// when the job left the process group: the step's cgroup goes with it.
func TestOutputOfLeftovers(t *testing.T) {
	t.Parallel()
	forEachWait(t, func(t *testing.T, run func(context.Context, *Command) (*Result, error)) {
		b := setup(t)
		start := time.Now()
		res, err := run(t.Context(), &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", `(echo from-job; exec sleep 100) & sleep 0.2; echo from-child; echo $! >&2`},
			Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &b.stdout, Stderr: &b.stderr, Policy: b.policy(),
		})
		if err != nil {
			t.Fatal(err)
		}
		b.requireExit(t, res, 0)
		if took := time.Since(start); took > time.Second {
			t.Errorf("Run took %v", took)
		}
		if b.stdout.String() != "from-job\nfrom-child\n" {
			t.Errorf("stdout %q", b.stdout.String())
		}
		requireGone(t, pids(t, b.stderr.String()))

		b.stdout.Reset()
		start = time.Now()
		res, err = run(t.Context(), &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", `setsid bash -c 'echo $$; echo escaped; touch ready; exec sleep 100' & until [ -e ready ]; do sleep 0.01; done`},
			Dir: b.dir, Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &b.stdout, Policy: b.policy(), KillGrace: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(b.stdout.String())
		if len(lines) != 2 || lines[1] != "escaped" {
			t.Fatalf("stdout %q", b.stdout.String())
		}
		b.requireExit(t, res, 0)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Run took %v, want about 200ms", took)
		}
		requireGone(t, pids(t, lines[0]))
	})
}

// failingWriter takes limit bytes, then fails.
type failingWriter struct {
	limit int
	got   bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.got.Len()+len(p) > w.limit {
		return 0, errors.New("full")
	}
	return w.got.Write(p)
}

// TestWriterError: a writer that fails stops the reading of its stream,
// which gives the child EPIPE rather than a pipe that blocks it; the other
// stream is still read.
func TestWriterError(t *testing.T) {
	t.Parallel()
	forEachWait(t, func(t *testing.T, run func(context.Context, *Command) (*Result, error)) {
		b := setup(t)
		w := &failingWriter{limit: 1 << 20}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res, err := run(ctx, &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", `trap '' PIPE; yes > /dev/stdout; echo "yes: $?" >&2`},
			Env: []string{"PATH=/usr/bin:/bin"}, Stdout: w, Stderr: &b.stderr, Policy: b.policy(),
		})
		if err != nil {
			t.Fatal(err)
		}
		b.requireExit(t, res, 0)
		if w.got.Len() == 0 || w.got.Len() > 1<<20 || !strings.HasPrefix(w.got.String(), "y\ny\n") {
			t.Errorf("stdout writer got %d bytes: %.20q", w.got.Len(), w.got.String())
		}
		if !strings.Contains(b.stderr.String(), "Broken pipe") || !strings.HasSuffix(b.stderr.String(), "yes: 1\n") {
			t.Errorf("stderr %q", b.stderr.String())
		}
	})
}

// TestSamePolicyStepsAreApart: steps of one policy share a ruleset, but
// each has a domain of its own, so neither reaches the other.
func TestSamePolicyStepsAreApart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if abi, _ := Check(); abi < 6 {
		t.Skipf("Landlock ABI %d cannot scope signals", abi)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = Run(ctx, &Command{
			Path: "/bin/bash", Args: []string{"bash", "-c", "echo $$ > pid.tmp && mv pid.tmp pid && exec sleep 100"},
			Dir: b.dir, Env: []string{"SECRET=hunter2"}, Policy: b.policy(),
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	pid := waitForPIDFile(t, b.dir)
	script := fmt.Sprintf(`cat /proc/%s/environ; kill -0 %s && echo signalled; true`, pid, pid)
	res := b.bash(t, t.Context(), b.policy(), script)
	b.requireExit(t, res, 0)
	if b.stdout.String() != "" {
		t.Fatalf("a step reached another step of the same policy: %q", b.stdout.String())
	}
}

func waitForPIDFile(t *testing.T, dir string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other step did not start")
		}
		if pid, _ := os.ReadFile(filepath.Join(dir, "pid")); len(pid) > 0 {
			return strings.TrimSpace(string(pid))
		}
	}
}
