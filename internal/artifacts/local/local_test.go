package local_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/artifacts/artifactstest"
	"github.com/routines-dev/routines/internal/artifacts/local"
)

func setup(t *testing.T) (*local.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "artifacts")
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestConformance(t *testing.T) {
	t.Parallel()
	artifactstest.Exercise(t, func(t *testing.T) *artifactstest.Harness {
		s, dir := setup(t)
		return &artifactstest.Harness{Store: s, Corrupt: func(t *testing.T, run, step, name string) {
			p := filepath.Join(dir, run, step, filepath.FromSlash(name))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}}
	})
}

// TestLinksNotFollowed: a link planted in the store's directory, for a
// folder or a file, is neither written through nor read.
func TestLinksNotFollowed(t *testing.T) {
	t.Parallel()
	const run = "01RUNAAAAAAAAAAAAAAAAAAAAA"
	s, dir := setup(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, run, ".sha256", "s"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A folder that is a link to one inside the store, and a file that is
	// a link to one outside it, with a checksum to go with it.
	if err := os.Symlink("other", filepath.Join(dir, run, "s")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, run, "other"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, run, "other", "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, run, ".sha256", "s", "f"), []byte(strings.Repeat("0", 64)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), run, "s", "x", strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Put through a linked folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, run, "other", "x")); err == nil {
		t.Error("Put wrote through the link")
	}
	if _, err := s.Get(t.Context(), run, "s", "f"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Get through a linked folder: %v", err)
	}
	if _, err := s.Get(t.Context(), run, "other", "f"); err == nil {
		t.Error("Get of a linked file: no error")
	}
}
