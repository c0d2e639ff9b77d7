// Package filewatcher is the file example of docs/triggers.md: a CSV
// dropped into ./inbox is summed. Its test starts the daemon, drops a file
// and waits for the run's result.
package filewatcher

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/steps"
)

// lockedBuffer collects the daemon's output from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCSVDropped(t *testing.T) {
	// A copy, so the checkout gets no .routines/ or outbox/ of its own.
	dir := filepath.Join(t.TempDir(), "file-watcher")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, ".routines"))
	os.RemoveAll(filepath.Join(dir, "outbox"))

	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan int, 1)
	go func() {
		deps := cli.Deps{Kinds: steps.NewRegistry(steps.RunKind{}), Stdout: &out, Stderr: &out}
		done <- cli.Run(ctx, deps, []string{"serve", dir, "--addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, out.String())
		}
	}()
	// The watch is on once the daemon has written serve.json.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, ".routines", "serve.json")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
	}

	// A file the glob does not match makes no run; the CSV does.
	if err := os.WriteFile(filepath.Join(dir, "inbox", "notes.txt"), []byte("not a csv\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := "item,amount\nbook,12.50\npen,1.25\nlamp,30\n"
	if err := os.WriteFile(filepath.Join(dir, "inbox", "orders.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	total := filepath.Join(dir, "outbox", "orders.total")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(total); err == nil {
			if string(data) != "43.75\n" {
				t.Fatalf("total %q, want 43.75", data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no total after dropping orders.csv:\n%s", out.String())
		}
	}
	// notes.txt was dropped first, so a run for it would be queued by now.
	if n := strings.Count(out.String(), `msg="run queued"`); n != 1 {
		t.Fatalf("%d runs queued, want 1 (orders.csv):\n%s", n, out.String())
	}
	entries, err := os.ReadDir(filepath.Join(dir, "outbox"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox holds %v (%v), want orders.total only", entries, err)
	}
}
