// Package project finds the project a command works on, by one rule for
// every command, and owns the paths under it. A project is a directory
// whose .routines/ holds the state of the routines under it: the store
// (runs, logs, audit, state), the builtin vault's secrets, the record of
// the daemon serving it and the locks of the processes executing its runs.
//
// The rule (docs/projects.md):
//
//  1. --project DIR (or ROUTINES_PROJECT) names it.
//  2. Else the search starts at a directory — the routine's own directory
//     for a command given a routine (a path or a name), the directory
//     given to serve, else the current directory — and walks up to the
//     nearest directory that holds .routines/, as git finds .git/.
//  3. Else the start directory is the project, and the first command that
//     records something there creates its .routines/ (and says so).
package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateDirName is the directory of a project that holds its state.
const StateDirName = ".routines"

// EnvVar names the project like --project does.
const EnvVar = "ROUTINES_PROJECT"

// How tells how a project was found.
type How string

// The ways a project is found.
const (
	Named   How = "named"   // by --project or ROUTINES_PROJECT
	Found   How = "found"   // the nearest directory upwards holding .routines/
	Started How = "started" // none above: the start directory, with no state yet
)

// Project is a project directory.
type Project struct {
	// Dir is the project directory, absolute.
	Dir string
	// How tells how it was found, for messages and routines status.
	How How
}

// Find applies the rule: named (from --project or ROUTINES_PROJECT, ""
// when neither is set) wins; else the nearest directory from start
// upwards that holds .routines/; else start itself.
func Find(named, start string) (Project, error) {
	if named != "" {
		dir, err := filepath.Abs(named)
		if err != nil {
			return Project{}, err
		}
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return Project{}, fmt.Errorf("project %s: not a directory", named)
		}
		return Project{Dir: dir, How: Named}, nil
	}
	abs, err := filepath.Abs(start)
	if err != nil {
		return Project{}, err
	}
	for dir := abs; ; {
		if info, err := os.Stat(filepath.Join(dir, StateDirName)); err == nil && info.IsDir() {
			return Project{Dir: dir, How: Found}, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Project{Dir: abs, How: Started}, nil
		}
		dir = parent
	}
}

// StateDir is the project's .routines directory.
func (p Project) StateDir() string { return filepath.Join(p.Dir, StateDirName) }

// StorePath is the project's SQLite store.
func (p Project) StorePath() string { return filepath.Join(p.StateDir(), "state.db") }

// RunsDir holds the folders of runs (.routines/runs/<run id>): their
// workspaces while they run, and the artifacts they kept after.
func (p Project) RunsDir() string { return filepath.Join(p.StateDir(), "runs") }

// OwnersDir holds the lock files of the processes executing the
// project's runs (package owner).
func (p Project) OwnersDir() string { return filepath.Join(p.StateDir(), "owners") }

// HasStore reports whether the project's store exists.
func (p Project) HasStore() bool {
	_, err := os.Stat(p.StorePath())
	return err == nil
}

// Create makes the project's .routines directory when it is missing and
// reports whether it did: a command that starts a project says so, since
// every directory below now belongs to it.
func (p Project) Create() (bool, error) {
	err := os.Mkdir(p.StateDir(), 0o700)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		return false, fmt.Errorf("create %s: %w", p.StateDir(), err)
	}
}

// String names the project for messages: its directory.
func (p Project) String() string { return p.Dir }
