package spec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of the golden files")

// testCPUs fixes the CPU count the parallelism default derives from, so
// the golden plans do not depend on the machine.
const testCPUs = 2

// TestGolden runs every testdata/*.txtar: its routine.yaml, with the other
// files of the archive beside it, must give want.plan (the routine after
// defaults, as JSON) or want.errors (the problems as rendered, with the
// temporary directory the routine directory $TMP/r is in written $TMP).
func TestGolden(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := parseArchive(data)
			name, got := runArchive(t, a)
			want, ok := a.file(name)
			if *update {
				var files []archiveFile
				for _, f := range a.files {
					if !strings.HasPrefix(f.name, "want.") {
						files = append(files, f)
					}
				}
				a.files = append(files, archiveFile{name: name, data: got})
				if err := os.WriteFile(path, a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !ok {
				t.Fatalf("the archive has no %s; got:\n%s", name, got)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
			}
		})
	}
}

// runArchive parses the archive's routine.yaml in a directory holding its
// other files, and returns the name of the expected section and its
// content.
func runArchive(t *testing.T, a *archive) (string, []byte) {
	t.Helper()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "r")
	var yaml []byte
	found := false
	for _, f := range a.files {
		switch {
		case f.name == "routine.yaml":
			yaml, found = f.data, true
		case strings.HasPrefix(f.name, "want."):
		default:
			p := filepath.Join(dir, f.name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !found {
		t.Fatal("the archive has no routine.yaml")
	}
	r, err := parse("routine.yaml", yaml, dir, testCPUs)
	if err != nil {
		if Problems(err) == nil {
			t.Fatalf("parse returned %T, not problems: %v", err, err)
		}
		return "want.errors", []byte(strings.ReplaceAll(err.Error(), tmp, "$TMP") + "\n")
	}
	var plan bytes.Buffer
	enc := json.NewEncoder(&plan)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return "want.plan", plan.Bytes()
}
