// Package filewatcher is the file example of docs/triggers.md: a CSV
// dropped into ./inbox is summed. Its test starts the daemon, drops a file
// and waits for the run's result.
package filewatcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestCSVDropped(t *testing.T) {
	// A copy, so the checkout gets no .routines/ or outbox/ of its own.
	dir := clitest.CopyProject(t, ".", "outbox")
	// The watch is on once the daemon has written serve.json.
	_, out := clitest.Serve(t, dir)

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
