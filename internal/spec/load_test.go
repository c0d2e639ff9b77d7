package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

const helloYAML = "name: hello\nsteps:\n  - id: greet\n    run: ./greet.sh\n"

// setup writes a routine directory holding file (with helloYAML) and the
// script it runs.
func setup(t *testing.T, file string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(helloYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "greet.sh"), []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(helloYAML))
	revision := hex.EncodeToString(sum[:])
	tests := []struct {
		name, file string
		path       func(dir string) string
	}{
		{"directory", "routine.yaml", func(dir string) string { return dir }},
		{"yml in directory", "routine.yml", func(dir string) string { return dir }},
		{"file", "routine.yaml", func(dir string) string { return filepath.Join(dir, "routine.yaml") }},
		{"other file name", "nightly.yaml", func(dir string) string { return filepath.Join(dir, "nightly.yaml") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := setup(t, tt.file)
			r, err := Load(tt.path(dir))
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != "hello" || r.File != filepath.Join(dir, tt.file) || r.Dir != dir || r.Revision != revision {
				t.Errorf("Load = name %q, file %q, dir %q, revision %q", r.Name, r.File, r.Dir, r.Revision)
			}
			if r.Parallelism != runtime.NumCPU()*parallelismPerCPU || r.Steps[0].Shell != "bash" {
				t.Errorf("defaults not applied: parallelism %d, shell %q", r.Parallelism, r.Steps[0].Shell)
			}
		})
	}
}

func TestLoadRelativePath(t *testing.T) {
	dir := setup(t, "routine.yaml")
	t.Chdir(filepath.Dir(dir))
	r, err := Load(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != dir || r.File != filepath.Join(filepath.Base(dir), "routine.yaml") {
		t.Errorf("Load = dir %q, file %q; want dir %q and the file as given", r.Dir, r.File, dir)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	t.Run("no routine file", func(t *testing.T) {
		t.Parallel()
		_, err := Load(t.TempDir())
		if !errors.Is(err, fs.ErrNotExist) || Problems(err) != nil {
			t.Errorf("Load(empty dir) = %v, want a not-exist error", err)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		t.Parallel()
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(missing) = %v, want a not-exist error", err)
		}
	})
	t.Run("invalid routine names the file as given", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "routine.yaml"), []byte("name: x\nstpes: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		problems := Problems(err)
		if len(problems) != 1 || problems[0].File != filepath.Join(dir, "routine.yaml") || problems[0].Line != 2 {
			t.Errorf("Load = %+v", problems)
		}
	})
	t.Run("missing script", func(t *testing.T) {
		t.Parallel()
		dir := setup(t, "routine.yaml")
		if err := os.Remove(filepath.Join(dir, "greet.sh")); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); len(Problems(err)) != 1 {
			t.Errorf("Load without the script = %v, want one problem", err)
		}
	})
}

func TestParseWithoutDirSkipsFiles(t *testing.T) {
	t.Parallel()
	r, err := Parse("routine.yaml", []byte(helloYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != "" || r.File != "routine.yaml" {
		t.Errorf("Parse = dir %q, file %q", r.Dir, r.File)
	}
}

func TestSecretForms(t *testing.T) {
	t.Parallel()
	r, err := Parse("routine.yaml", []byte("name: s\nsecrets:\n  - A\n  - {name: B, from: 'env:OTHER'}\nsteps:\n  - id: a\n    run: echo {{A}} {{B}}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 2 || r.Secrets[0].Name != "A" || r.Secrets[1].Name != "B" || r.Secrets[1].From != "env:OTHER" {
		t.Errorf("Secrets = %+v", r.Secrets)
	}
}
