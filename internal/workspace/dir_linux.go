package workspace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
