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
package workspace

import (
	"errors"
	"fmt"
	"io"
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

// Dir is an open directory of the engine (a workspace, a routine
// directory): files beneath it are reached from its descriptor, never by
// its path again, so what happens to the path while a step runs does not
// matter.
type Dir struct {
	fd int
}

// Open opens the directory path. The run step opens its workspace before
// the step starts and reads the step's outputs from that descriptor.
func Open(path string) (*Dir, error) {
	fd, err := openRoot(path)
	if err != nil {
		return nil, err
	}
	return &Dir{fd: fd}, nil
}

// Create opens the directory path, creating it first when it is missing.
func Create(path string) (*Dir, error) {
	d, err := Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
		d, err = Open(path)
	}
	return d, err
}

// Close releases the descriptor.
func (d *Dir) Close() error { return closeFD(d.fd) }

// ReadFile returns the content of the file name beneath d: a regular file
// with one link and at most limit bytes, reached without a link at any
// component. An absent file is an error matching fs.ErrNotExist.
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) {
	fd, size, err := openRegular(d.fd, name, limit)
	if err != nil {
		return nil, err
	}
	defer closeFD(fd)
	return readAll(fd, size, limit)
}

// Remove removes the file name beneath d, or the link name: it does not
// follow one. An absent file is no error.
func (d *Dir) Remove(name string) error {
	name, err := local(name)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(name)
	if dir == "" {
		return removeAt(d.fd, base)
	}
	parent, err := openBeneath(d.fd, dir, dirFlags)
	if err != nil {
		return err
	}
	defer closeFD(parent)
	return removeAt(parent, base)
}

// MkdirAll creates the folder name beneath d and its parents, refusing a
// link at any component.
func (d *Dir) MkdirAll(name string) error {
	name, err := local(name)
	if err != nil {
		return err
	}
	fd, err := mkdirBeneath(d.fd, name)
	if err != nil {
		return err
	}
	return closeFD(fd)
}

// CopyFile copies the file src beneath d, read as ReadFile reads, to a new
// file dst beneath to: its folders are created without following a link,
// and a file already at dst (one the step wrote there itself) is replaced,
// never written through.
func (d *Dir) CopyFile(src string, to *Dir, dst string, limit int64) error {
	in, _, err := openRegular(d.fd, src, limit)
	if err != nil {
		return err
	}
	inFile := os.NewFile(uintptr(in), src)
	defer inFile.Close()

	dst, err = local(dst)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	parent, err := mkdirBeneath(to.fd, filepath.Dir(dst))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer closeFD(parent)
	out, err := createExcl(parent, filepath.Base(dst))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	outFile := os.NewFile(uintptr(out), dst)
	// The source may still grow (a process the step left behind): the
	// limit holds for what is copied, not only for the size seen at open.
	n, err := io.Copy(outFile, io.LimitReader(inFile, limit+1))
	if err == nil && n > limit {
		err = tooLarge(limit)
	}
	if cerr := outFile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeAt(parent, filepath.Base(dst))
		return err
	}
	return nil
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
