package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// stateDirName is the per-project directory holding the store and run workspaces.
const stateDirName = ".routines"

// ownersDir returns the directory of the lock files of the processes
// that execute the project's runs (package owner).
func ownersDir(project string) string {
	return filepath.Join(project, stateDirName, "owners")
}

// projectFor returns the project directory for a starting directory: the
// --project flag, else the nearest directory from start upwards that
// already holds .routines/, else start itself.
func (g *globals) projectFor(start string) (string, error) {
	if g.project != "" {
		return filepath.Abs(g.project)
	}
	abs, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for dir := abs; ; {
		if info, err := os.Stat(filepath.Join(dir, stateDirName)); err == nil && info.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		dir = parent
	}
}

// openStore opens the project's store, creating it when create is set.
// Without create, a project with no store is an error that says where it
// looked.
func openStore(ctx context.Context, project string, create bool) (*sqlite.Store, error) {
	path := filepath.Join(project, stateDirName, "state.db")
	if !create {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, invalidf("no runs recorded in %s yet (no %s); run a routine there first, or pass --project DIR", project, filepath.Join(stateDirName, "state.db"))
		}
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

func invalidf(format string, args ...any) error { return invalid(fmt.Errorf(format, args...)) }

// loadRoutine finds and validates the routine an argument names: a
// directory holding routine.yaml, a routine file, or the name of a routine
// somewhere in the project (the current directory, or --project). It also
// returns the project the routine's runs belong to: for a path, the one
// around the routine's directory; for a name, the one it was found in.
// Problems in the file are bad input.
func (g *globals) loadRoutine(arg string) (*routine.Routine, string, error) {
	if arg == "" {
		arg = "."
	}
	if _, err := os.Stat(arg); err != nil {
		return g.loadByName(arg)
	}
	r, err := g.load(arg)
	if err != nil {
		return nil, "", invalid(err)
	}
	project, err := g.projectFor(r.Dir)
	return r, project, err
}

// loadByName finds the routine called name in the project around the
// current directory (or --project) and validates it.
func (g *globals) loadByName(name string) (*routine.Routine, string, error) {
	project, err := g.projectFor(".")
	if err != nil {
		return nil, "", err
	}
	path, err := findByName(project, name)
	if err != nil {
		return nil, "", invalid(err)
	}
	r, err := g.load(path)
	if err != nil {
		return nil, "", invalid(err)
	}
	return r, project, nil
}

// firstArg returns the optional first argument, or "".
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// findByName looks for the routine called name under root.
func findByName(root, name string) (string, error) {
	var found string
	walkErr := walkRoutineFiles(root, func(path string) error {
		if r, err := spec.Load(path); err == nil && r.Name == name {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	if walkErr != nil {
		return "", walkErr
	}
	if found == "" {
		return "", fmt.Errorf("%s: no such file, directory or routine in %s", name, root)
	}
	return found, nil
}
