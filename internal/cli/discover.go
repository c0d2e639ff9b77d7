package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
)

// discover loads every routine file under root (skipping hidden,
// dependency and testdata directories) and vets each with check. Invalid files are reported
// to warn, with the positions of their problems, and skipped; two valid
// routines with the same name are an error, since runs and webhooks find
// routines by name.
func discover(root string, warn io.Writer, check func(*routine.Routine) error) ([]*routine.Routine, error) {
	var found []*routine.Routine
	where := map[string]string{}
	var dups []string
	err := walkRoutineFiles(root, func(path string) error {
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
	return walkRoutineTree(root, 0, fn)
}

// errSearchBound stops a walk that visited its bound of directories.
var errSearchBound = errors.New("search bound reached")

// walkRoutineTree is walkRoutineFiles visiting at most maxDirs
// directories (0: no bound); past it, it returns errSearchBound.
func walkRoutineTree(root string, maxDirs int, fn func(path string) error) error {
	dirs := 0
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path != root && skippedDir(d.Name()) {
				return filepath.SkipDir
			}
			if dirs++; maxDirs > 0 && dirs > maxDirs {
				return errSearchBound
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
