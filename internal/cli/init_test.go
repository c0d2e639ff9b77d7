package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/spec"
)

// Every routine file `routines serve .` or `routines test` finds in a
// checkout of this repository is valid: templates and deliberately broken
// fixtures must not be named like routines.
func TestCheckoutHoldsNoInvalidRoutine(t *testing.T) {
	t.Parallel()
	found := 0
	err := project.Walk(filepath.Join("..", ".."), project.WalkOptions{}, func(path string) error {
		found++
		if _, err := spec.Load(path); err != nil {
			t.Errorf("%v\nrename it (a template: add .tmpl) or move it under a testdata directory", err)
		}
		return nil
	})
	if err != nil || found < 10 {
		t.Fatalf("the walk of the checkout found %d routine files: %v", found, err)
	}
}

// init writes the template under the name of a routine, and no .tmpl.
func TestInitWritesTemplatesUnderTheirNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := writeScaffold(dir, "morning"); err != nil {
		t.Fatal(err)
	}
	r, err := spec.Load(filepath.Join(dir, "routine.yaml"))
	if err != nil || r.Name != "morning" {
		t.Fatalf("the written routine: %v", err)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if strings.HasSuffix(path, ".tmpl") {
			t.Errorf("init wrote %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".gitignore")); err != nil {
		t.Error(err)
	}
}
