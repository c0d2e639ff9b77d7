package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse, seeded with the golden inputs:
// it must never panic, and must return a routine (and warnings) or
// problems that point into the file.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if yaml, ok := parseArchive(data).file("routine.yaml"); ok {
			f.Add(yaml)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {<<: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("routine.yaml", data, "")
		problems := Problems(err)
		switch {
		case err == nil && r == nil:
			t.Fatal("Parse returned neither a routine nor an error")
		case err == nil:
			problems = r.Warnings
		case len(problems) == 0:
			t.Fatalf("Parse returned %v, not problems", err)
		}
		for _, p := range problems {
			if p.Line < 1 || p.Col < 1 || p.Message == "" {
				t.Fatalf("bad problem %+v", p)
			}
		}
		if err == nil {
			return
		}
		_ = err.Error()
	})
}
