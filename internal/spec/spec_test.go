package spec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of the golden files")

// testCPUs fixes the CPU count the parallelism default derives from, so
// the golden plans do not depend on the machine.
const testCPUs = 2

// TestGolden runs every testdata/*.txtar: its routine.yaml, with the other
// files of the archive beside it, must give want.plan (the routine after
// defaults, as JSON) and want.warnings when it has warnings, or
// want.errors (the problems as rendered).
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
			got := runArchive(t, a)
			if *update {
				var files []archiveFile
				for _, f := range a.files {
					if !strings.HasPrefix(f.name, "want.") {
						files = append(files, f)
					}
				}
				a.files = append(files, got...)
				if err := os.WriteFile(path, a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, f := range a.files {
				if strings.HasPrefix(f.name, "want.") && !slices.ContainsFunc(got, func(g archiveFile) bool { return g.name == f.name }) {
					t.Errorf("the archive has %s, the routine gives none (go test -update rewrites it)", f.name)
				}
			}
			for _, g := range got {
				want, ok := a.file(g.name)
				if !ok {
					t.Fatalf("the archive has no %s; got:\n%s", g.name, g.data)
				}
				if string(g.data) != string(want) {
					t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", g.name, g.data, want)
				}
			}
		})
	}
}

// runArchive parses the archive's routine.yaml in a directory holding its
// other files, and returns the expected sections: want.errors, or
// want.plan and, when there are any, want.warnings (both rendered as
// validate prints them, with the temporary directory the routine directory
// $TMP/r is in written $TMP).
func runArchive(t *testing.T, a *archive) []archiveFile {
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
		return []archiveFile{{name: "want.errors", data: []byte(strings.ReplaceAll(err.Error(), tmp, "$TMP") + "\n")}}
	}
	var plan bytes.Buffer
	enc := json.NewEncoder(&plan)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	got := []archiveFile{{name: "want.plan", data: plan.Bytes()}}
	if len(r.Warnings) > 0 {
		var w strings.Builder
		for _, p := range r.Warnings {
			w.WriteString(strings.ReplaceAll(p.String(), tmp, "$TMP") + "\n")
		}
		got = append(got, archiveFile{name: "want.warnings", data: []byte(w.String())})
	}
	return got
}
