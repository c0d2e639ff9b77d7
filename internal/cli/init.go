package cli

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/spec"
)

//go:embed scaffold
var scaffold embed.FS

var routineName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init DIR",
		Short: "Create a project directory with a commented routine.yaml",
		Long: "init creates DIR with routine.yaml (a cron trigger at 08:00 that prints a greeting),\n" +
			"scripts/greet.sh, tests/greeting.yaml (run by routines test), routine.schema.json (for editors)\n" +
			"and a .gitignore for .routines/.\n" +
			"The routine is named after DIR.",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			name := strings.ToLower(filepath.Base(abs))
			if !routineName.MatchString(name) {
				return invalid(fmt.Errorf("%q cannot name a routine: use lower-case letters, digits and dashes", name))
			}
			if _, err := os.Stat(filepath.Join(dir, "routine.yaml")); err == nil {
				return invalid(fmt.Errorf("%s already holds a routine.yaml; nothing was changed", dir))
			}
			if err := writeScaffold(dir, name); err != nil {
				return err
			}
			if err := writeNew(filepath.Join(dir, "routine.schema.json"), spec.Schema(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(g.deps.Stdout, "Created %[1]s/routine.yaml, %[1]s/scripts/greet.sh, %[1]s/tests/greeting.yaml, %[1]s/routine.schema.json and %[1]s/.gitignore.\nNext: routines run-once %[1]s, then routines test %[1]s\n", dir)
			return nil
		},
	}
}

// writeScaffold copies the embedded scaffold into dir. The routine
// template is stored as routine.yaml.tmpl, and written out as
// routine.yaml: under its real name it would be found, and refused as
// invalid, by `routines serve .` or `routines test` run from a checkout of
// this repository.
func writeScaffold(dir, name string) error {
	return fs.WalkDir(scaffold, "scaffold", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("scaffold", path)
		target := filepath.Join(dir, strings.TrimSuffix(rel, ".tmpl"))
		if rel == "gitignore" {
			target = filepath.Join(dir, ".gitignore")
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := scaffold.ReadFile(path)
		if err != nil {
			return err
		}
		data = []byte(strings.ReplaceAll(string(data), "{{NAME}}", name))
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		return writeNew(target, data, mode)
	})
}

// writeNew writes a file that does not exist yet, through a temporary
// name, so an interrupted init leaves no half file; an existing file is
// the user's and is kept.
func writeNew(target string, data []byte, mode os.FileMode) error {
	if _, err := os.Stat(target); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := target + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return os.Rename(tmp, target)
}
