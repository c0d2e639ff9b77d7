package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/suggest"
)

// projectFor applies the project rule (package project) from a start
// directory: --project or ROUTINES_PROJECT, else the nearest directory
// from start upwards that holds .routines/, else start itself.
func (g *globals) projectFor(start string) (project.Project, error) {
	named := g.project
	if named == "" {
		named = g.getenv(project.EnvVar)
	}
	return project.Find(named, start)
}

// openStore opens the project's store, creating it when create is set
// (and saying so when that starts a project). Without create, a project
// with no store is an error that says where it looked.
func (g *globals) openStore(ctx context.Context, p project.Project, create bool) (store.Store, error) {
	return g.openStoreSync(ctx, p, create, sqlite.SyncFull)
}

// openStoreSync is openStore with commits that wait for the disk as sync
// says.
func (g *globals) openStoreSync(ctx context.Context, p project.Project, create bool, sync sqlite.Sync) (store.Store, error) {
	if !create && !p.HasStore() {
		return nil, invalidf("nothing is recorded in project %s yet (no %s): no runs, no secrets; run a routine or store a secret there first, or pass --project DIR (routines help projects)%s",
			p.Dir, p.StorePath(), projectsBelow(p, project.Project.HasStore, "with a store"))
	}
	if create {
		made, err := p.Create()
		if err != nil {
			return nil, err
		}
		if made {
			fmt.Fprintf(g.deps.Stderr, "new project %s: its runs, logs and secrets go to %s (how a project is found: routines help projects)\n", p.Dir, p.StateDir())
		}
	}
	u := store.SQLiteURL(p.StorePath())
	if sync != sqlite.SyncFull {
		u += "?sync=" + string(sync)
	}
	return g.openStoreURL(ctx, u)
}

func invalidf(format string, args ...any) error { return invalid(fmt.Errorf(format, args...)) }

// loadRoutine finds and validates the routine an argument names: a
// directory holding routine.yaml, a routine file, or the name of a routine
// in the project around the current directory. It also returns the
// project the routine's runs belong to, found from the routine's own
// directory however it was named. Problems in the file are bad input.
func (g *globals) loadRoutine(arg string) (*routine.Routine, project.Project, error) {
	if arg == "" {
		arg = "."
	}
	if _, err := os.Stat(arg); err != nil {
		r, _, err := g.loadByName(arg)
		if err != nil {
			return nil, project.Project{}, err
		}
		p, err := g.projectFor(r.Dir)
		return r, p, err
	}
	r, err := g.load(arg)
	if err != nil {
		return nil, project.Project{}, invalid(err)
	}
	p, err := g.projectFor(r.Dir)
	return r, p, err
}

// loadByName finds the routine called name in the project around the
// current directory, validates it and returns it with that project.
func (g *globals) loadByName(name string) (*routine.Routine, project.Project, error) {
	here, err := g.projectFor(".")
	if err != nil {
		return nil, here, err
	}
	path, err := findByName(here.Dir, name)
	if err != nil {
		return nil, here, invalid(err)
	}
	r, err := g.load(path)
	if err != nil {
		return nil, here, invalid(err)
	}
	return r, here, nil
}

// projectsBelow names, for a message about what a project lacks, the
// projects of their own under it that have it (keep tells), found as a
// lookup by name walks: a user at a checkout's root whose runs went to
// examples/hello/.routines learns where they are.
func projectsBelow(p project.Project, keep func(project.Project) bool, what string) string {
	var found []string
	_ = project.Walk(p.Dir, project.WalkOptions{MaxDirs: maxNameSearch, OwnProject: true, Nested: func(dir string) {
		if sub := (project.Project{Dir: dir}); keep(sub) {
			rel, err := filepath.Rel(p.Dir, dir)
			if err != nil {
				rel = dir
			}
			found = append(found, rel)
		}
	}}, func(string) error { return nil })
	switch {
	case len(found) == 0:
		return ""
	case len(found) > 5:
		found = append(found[:5], "…")
	}
	return fmt.Sprintf("; projects below %s: %s (cd there, or pass --project DIR)", what, strings.Join(found, ", "))
}

// firstArg returns the optional first argument, or "".
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// maxNameSearch bounds the directories a lookup by name visits, so that a
// name typed in a home directory answers at once instead of walking it.
const maxNameSearch = 2000

// findByName looks for the routine called name under root, visiting at
// most maxNameSearch directories. Not found, it suggests the closest name
// it saw.
func findByName(root, name string) (string, error) {
	var found string
	var names []string
	walkErr := project.Walk(root, project.WalkOptions{MaxDirs: maxNameSearch}, func(path string) error {
		r, err := spec.Load(path)
		if err != nil {
			return nil
		}
		if r.Name == name {
			found = path
			return fs.SkipAll
		}
		names = append(names, r.Name)
		return nil
	})
	switch {
	case found != "":
		return found, nil
	case errors.Is(walkErr, project.ErrSearchBound):
		return "", fmt.Errorf("%s: no such file or directory, and no routine of that name in the first %d directories under %s (the search stops there): pass the routine's directory%s",
			name, maxNameSearch, root, suggest.DidYouMean(name, names))
	case walkErr != nil:
		return "", walkErr
	}
	return "", fmt.Errorf("%s: no such file or directory, and no routine of that name under %s%s", name, root, suggest.DidYouMean(name, names))
}

// newProjectsTopic is `routines help projects`: the rule, where an
// installed binary has no docs/ beside it.
func newProjectsTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "projects",
		Short: "Where state lives: how every command finds its project",
		Long: `A project is a directory whose .routines/ holds the store (runs, logs, audit, state),
the builtin vault's secrets, and the record and lock of the daemon serving it.
Every command finds its project by one rule:

  1. --project DIR, or the environment variable ROUTINES_PROJECT;
  2. else, from a start directory upwards, the nearest directory holding .routines/
     (as git finds .git/). The start is the routine's own directory for a command
     given a routine (by path or by name), the directory given to serve, else the
     current directory;
  3. else the start directory itself: the first command that records something
     there (run-once, serve, secrets set) creates its .routines/ and says so.

serve leaves alone subdirectories that are projects of their own. One daemon serves
a project at a time; routines status shows the project here, its store, vault,
master key, daemon (up, stale or not running) and routines.
Docs: https://github.com/routines-dev/routines/blob/main/docs/projects.md`,
	}
}
