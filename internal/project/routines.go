package project

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
)

// Discover loads every routine file of root's project under root
// (skipping hidden, dependency and testdata directories, and projects of
// their own) and vets each with check. Invalid files are reported to
// warn, with the positions of their problems, and skipped, as are what
// validation noticed in valid ones; two valid routines with the same
// name are an error, since runs and webhooks find routines by name.
func Discover(root string, warn io.Writer, check func(*routine.Routine) error) ([]*routine.Routine, error) {
	var found []*routine.Routine
	where := map[string]string{}
	var dups []string
	nested := func(dir string) {
		fmt.Fprintf(warn, "note: %s is a project of its own (it holds %s/): its routines are left to it; serve it there\n", dir, StateDirName)
	}
	err := Walk(root, WalkOptions{OwnProject: true, Nested: nested}, func(path string) error {
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
		for _, p := range r.Warnings {
			fmt.Fprintln(warn, p)
		}
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

// WalkOptions bound a walk of routine files.
type WalkOptions struct {
	// MaxDirs is how many directories the walk visits at most (0: no
	// bound); past it, Walk returns ErrSearchBound.
	MaxDirs int
	// OwnProject keeps the walk within root's project: a subdirectory
	// holding a .routines/ of its own is another project, whose routines
	// keep their runs there; it is passed over, and told to Nested when
	// that is set.
	OwnProject bool
	Nested     func(dir string)
}

// ErrSearchBound stops a walk that visited its bound of directories.
var ErrSearchBound = errors.New("search bound reached")

// Walk calls fn with the path of every routine file (routine.yaml or
// routine.yml) under root, skipping the directories no routine lives in
// (SkippedDir). Unreadable entries are passed over; fn may return
// fs.SkipAll to stop.
func Walk(root string, o WalkOptions, fn func(path string) error) error {
	dirs := 0
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if SkippedDir(d.Name()) {
				return filepath.SkipDir
			}
			if dirs++; o.MaxDirs > 0 && dirs > o.MaxDirs {
				return ErrSearchBound
			}
			if o.OwnProject {
				if info, err := os.Stat(filepath.Join(path, StateDirName)); err == nil && info.IsDir() {
					if o.Nested != nil {
						o.Nested(path)
					}
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !IsRoutineFile(d.Name()) {
			return nil
		}
		return fn(path)
	})
}

// SkippedDir reports the directories no routine is looked for in: hidden
// ones (.routines, .git, .cache …), dependencies (node_modules, vendor)
// and test data, which holds deliberately broken routines.
func SkippedDir(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	switch name {
	case "node_modules", "vendor", "testdata":
		return true
	}
	return false
}

// IsRoutineFile reports whether a file name is that of a routine file.
func IsRoutineFile(name string) bool {
	return name == "routine.yaml" || name == "routine.yml"
}
