// Package hello is the example of the README's quick start; its test runs
// it the way the README does.
package hello

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/steps"
)

func TestRunOnce(t *testing.T) {
	// A copy, so the checkout gets no .routines/ of its own.
	dir := filepath.Join(t.TempDir(), "hello")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, ".routines"))
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), cli.Deps{Kinds: steps.NewRegistry(steps.RunKind{}), Stdout: &stdout, Stderr: &stderr},
		[]string{"run-once", dir, "--input", "who=readers"})
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"[greet] Hello, readers!", "[shout] HELLO, READERS!", "[report] greet said 'Hello, readers!' in hello run "} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}
