package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
)

// discover loads every routine file of root's project under root
// (skipping hidden, dependency and testdata directories, and projects of
// their own) and vets each with check. Invalid files are reported to
// warn, with the positions of their problems, and skipped; two valid
// routines with the same name are an error, since runs and webhooks find
// routines by name.
func discover(root string, warn io.Writer, check func(*routine.Routine) error) ([]*routine.Routine, error) {
	var found []*routine.Routine
	where := map[string]string{}
	var dups []string
	nested := func(dir string) {
		fmt.Fprintf(warn, "note: %s is a project of its own (it holds %s/): its routines are left to it; serve it there\n", dir, project.StateDirName)
	}
	err := walkProjectFiles(root, nested, func(path string) error {
		r, err := spec.Load(path)
		if err == nil {
			if cerr := check(r); cerr != nil {
				err = fmt.Errorf("%s: %w", path, cerr)
			}
		}
		if err != nil {
			fmt.Fprintf(warn, "%v\nskipping %s: it is invalid\n", err, path)
			return nil
		}
		if prev, ok := where[r.Name]; ok {
			dups = append(dups, fmt.Sprintf("routine %q is defined twice: %s and %s", r.Name, prev, path))
			return nil
		}
		where[r.Name] = path
		writeWarnings(warn, r)
		found = append(found, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(dups) > 0 {
		return nil, fmt.Errorf("%s; routine names must be unique in a project", strings.Join(dups, "; "))
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, nil
}

// walkRoutineFiles calls fn with the path of every routine file
// (routine.yaml or routine.yml) under root, skipping the directories no
// routine lives in. Unreadable entries are passed over; fn may return
// fs.SkipAll to stop.
func walkRoutineFiles(root string, fn func(path string) error) error {
	return walkRoutineTree(root, walkOptions{}, fn)
}

// walkProjectFiles is walkRoutineFiles within root's project: a
// subdirectory holding a .routines/ of its own is another project, whose
// routines keep their runs there (package project). It is passed over and
// reported to nested, when not nil.
func walkProjectFiles(root string, nested func(dir string), fn func(path string) error) error {
	if nested == nil {
		nested = func(string) {}
	}
	return walkRoutineTree(root, walkOptions{nested: nested}, fn)
}

// walkOptions bound a walk of routine files.
type walkOptions struct {
	maxDirs int              // directories visited at most (0: no bound); past it errSearchBound
	nested  func(dir string) // when set, subdirectories that are projects of their own are skipped and reported
}

// errSearchBound stops a walk that visited its bound of directories.
var errSearchBound = errors.New("search bound reached")

func walkRoutineTree(root string, o walkOptions, fn func(path string) error) error {
	dirs := 0
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if skippedDir(d.Name()) {
				return filepath.SkipDir
			}
			if dirs++; o.maxDirs > 0 && dirs > o.maxDirs {
				return errSearchBound
			}
			if o.nested != nil {
				if info, err := os.Stat(filepath.Join(path, project.StateDirName)); err == nil && info.IsDir() {
					o.nested(path)
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !isRoutineFile(d.Name()) {
			return nil
		}
		return fn(path)
	})
}

// skippedDir reports the directories no routine is looked for in: hidden
// ones (.routines, .git, .cache …), dependencies (node_modules, vendor)
// and test data, which holds deliberately broken routines.
func skippedDir(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	switch name {
	case "node_modules", "vendor", "testdata":
		return true
	}
	return false
}

func isRoutineFile(name string) bool {
	return name == "routine.yaml" || name == "routine.yml"
}

// writeWarnings writes what validation noticed in a valid routine that
// may not mean what was meant (such as how a six-field cron is read).
func writeWarnings(w io.Writer, r *routine.Routine) {
	for _, p := range r.Warnings {
		fmt.Fprintln(w, p)
	}
}
