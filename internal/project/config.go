package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/routines-dev/routines/internal/retention"
	"github.com/routines-dev/routines/internal/spec"
)

// ConfigFileName is the project's configuration file, in the project
// directory beside .routines/: what the project as a whole keeps, rather
// than one routine (docs/operations.md).
const ConfigFileName = "routines.project.yaml"

// Config is the project's configuration. A key the file leaves out has
// its default.
type Config struct {
	// Retention says how long runs, logs, artifacts and audit records
	// are kept (package retention).
	Retention retention.Policy `yaml:"retention"`
}

// ConfigPath is the project's configuration file.
func (p Project) ConfigPath() string { return filepath.Join(p.Dir, ConfigFileName) }

// LoadConfig reads the project's configuration file, and returns the
// defaults when there is none. A file with problems is an error of
// package spec (every problem at file:line:col).
func (p Project) LoadConfig() (*Config, error) {
	c := &Config{Retention: retention.Default()}
	data, err := os.ReadFile(p.ConfigPath())
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the project's configuration: %w", err)
	}
	if err := spec.DecodeFile(p.ConfigPath(), data, c, "a project file", "retention:"); err != nil {
		return nil, err
	}
	return c, nil
}
