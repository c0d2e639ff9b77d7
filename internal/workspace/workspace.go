// Package workspace owns a run's private directory (.routines/runs/<run id>):
// its layout, and every file the engine itself reads or writes there or in a
// routine directory once a step has run — a step's outputs file, the
// artifacts it hands on, the clean-up at the end of the run.
//
// A step can write both directories, so everything in them is hostile: a
// step plants a symbolic link to /proc/self/environ, a hard link to the
// vault key, a FIFO that would hang the engine, a link in place of the
// folder the engine copies into. Every path beneath a directory is
// therefore opened without following any link (openat2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV), and only a regular file with a single link and a
// bounded size is read. Lookups start from the descriptor of a Dir: the
// workspace, opened before its step starts, or the routine directory, which
// the sandbox keeps a step from replacing.
//
// Dir exists on Linux only, the one system that runs the steps that write
// there (docs/platforms.md); elsewhere the package gives the layout and
// Clean, which the engine calls after every run.
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Artifacts is the folder of the workspace that holds the artifacts the
// steps kept, one folder per step id; Clean keeps it.
const Artifacts = "artifacts"

// OutputName is the name, in the workspace, of the $ROUTINES_OUTPUT file of
// one attempt of a step.
func OutputName(step string, attempt int) string {
	return ".output-" + step + "-" + strconv.Itoa(attempt)
}

// Limits on what the engine reads from a step: outputs become template
// values and database rows, and an artifact is copied whole, so a step
// could otherwise fill the engine's memory or disk (a sparse file of a
// terabyte costs the step nothing).
const (
	MaxOutputBytes   = 1 << 20   // the $ROUTINES_OUTPUT file
	MaxArtifactBytes = 256 << 20 // one artifact file
)

// Why a path is refused. The errors never quote the file: a step that
// points the engine at a file it cannot read itself learns nothing of it.
var (
	ErrLink       = errors.New("a symbolic link (not followed)")
	ErrOutside    = errors.New("outside its directory")
	ErrNotRegular = errors.New("not a regular file")
	ErrHardLinked = errors.New("a file with more than one hard link")
	ErrTooLarge   = errors.New("larger than the limit")
)

func tooLarge(limit int64) error {
	if limit%(1<<20) == 0 {
		return fmt.Errorf("%w of %d MiB", ErrTooLarge, limit>>20)
	}
	return fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
}

// Clean removes what the steps left in the workspace root (temporary
// files, outputs files) but the artifacts, and root itself when no
// artifacts were kept. os.RemoveAll never follows a link: it unlinks each
// entry from an open descriptor of its folder and opens sub-folders with
// O_NOFOLLOW, so a folder swapped for a link mid-walk is unlinked, not
// walked into.
func Clean(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("clean workspace: %w", err)
	}
	kept := false
	var errs []error
	for _, e := range entries {
		if e.Name() == Artifacts {
			kept = true
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if !kept {
		if err := os.Remove(root); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean workspace: %w", err)
	}
	return nil
}
