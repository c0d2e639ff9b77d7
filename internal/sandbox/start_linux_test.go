package sandbox

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		if err := Start(&p, cmd.Start); err != nil {
			t.Fatalf("Start: %v", err)
		}
		err := cmd.Wait()
		return out.String(), err
	}
	if out, err := run(inside); err != nil || out != "content of data.txt\n" {
		t.Fatalf("inside: %q, %v", out, err)
	}
	if out, err := run(outside); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("outside: %q, %v; want Permission denied", out, err)
	}
	if _, err := os.ReadFile(outside); err != nil {
		t.Fatalf("the engine lost access: %v", err)
	}
}
