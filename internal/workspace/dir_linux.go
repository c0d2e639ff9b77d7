package workspace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

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
// file dst beneath to, as WriteFile writes it.
func (d *Dir) CopyFile(src string, to *Dir, dst string, limit int64) error {
	in, _, err := openRegular(d.fd, src, limit)
	if err != nil {
		return err
	}
	inFile := os.NewFile(uintptr(in), src)
	defer inFile.Close()
	// The source may still grow (a process the step left behind): the
	// limit holds for what is copied, not only for the size seen at open.
	return to.WriteFile(dst, inFile, limit)
}

// WriteFile writes what r holds, at most limit bytes, to a new file name
// beneath d: its folders are created without following a link, and a file
// already at name (one a step wrote there itself) is replaced, never
// written through. On an error, of r too, nothing is left at name.
func (d *Dir) WriteFile(name string, r io.Reader, limit int64) error {
	name, err := local(name)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	parent, err := mkdirBeneath(d.fd, filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer closeFD(parent)
	out, err := createExcl(parent, filepath.Base(name))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	outFile := os.NewFile(uintptr(out), name)
	n, err := io.Copy(outFile, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = tooLarge(limit)
	}
	if cerr := outFile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeAt(parent, filepath.Base(name))
		return err
	}
	return nil
}

// Rename moves the file or folder old beneath d to new beneath d, both
// reached through no link; the folders of new are created. A folder
// fetched whole under a temporary name appears at once under its own.
func (d *Dir) Rename(old, new string) error {
	old, err := local(old)
	if err != nil {
		return err
	}
	new, err = local(new)
	if err != nil {
		return err
	}
	from, err := openBeneath(d.fd, filepath.Dir(old), dirFlags)
	if err != nil {
		return err
	}
	defer closeFD(from)
	to, err := mkdirBeneath(d.fd, filepath.Dir(new))
	if err != nil {
		return err
	}
	defer closeFD(to)
	return renameAt(from, filepath.Base(old), to, filepath.Base(new))
}

// Walk calls fn with each file beneath the folder name of d, by its path
// relative to that folder (slash-separated; each folder's entries in
// lexical order), opened as ReadFile opens: a regular file with one link
// and at most limit bytes, reached through no link. Anything else beneath
// the folder (a link, a FIFO, more than MaxWalkEntries entries or
// MaxWalkDepth levels of folders) stops the walk with an error that names
// it. A missing folder is an error matching fs.ErrNotExist.
func (d *Dir) Walk(name string, limit int64, fn func(rel string, f *os.File, size int64) error) error {
	fd, err := openBeneath(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	w := &walker{limit: limit, fn: fn}
	return w.folder(fd, "", 0)
}

// Bounds of Walk: a step could make millions of empty files, or folders
// nested as deep as paths go, each an upload or a descriptor.
const (
	MaxWalkEntries = 10000
	MaxWalkDepth   = 32
)

type walker struct {
	limit   int64
	fn      func(rel string, f *os.File, size int64) error
	entries int
}

// folder walks the open folder fd, whose path is prefix, and closes it.
func (w *walker) folder(fd int, prefix string, depth int) error {
	dir := os.NewFile(uintptr(fd), prefix)
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		rel := path.Join(prefix, e.Name())
		if w.entries++; w.entries > MaxWalkEntries {
			return fmt.Errorf("more than %d files and folders", MaxWalkEntries)
		}
		// The type read with the entry only picks how to open it: the
		// open itself refuses what is not that type, or a link.
		if e.IsDir() {
			if depth+1 >= MaxWalkDepth {
				return fmt.Errorf("%s: folders nested more than %d deep", rel, MaxWalkDepth)
			}
			sub, err := openBeneath(fd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if err := w.folder(sub, rel, depth+1); err != nil {
				return err
			}
			continue
		}
		in, size, err := openRegular(fd, e.Name(), w.limit)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		f := os.NewFile(uintptr(in), rel)
		err = w.fn(rel, f, size)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
