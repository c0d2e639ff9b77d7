// Package local is the artifact store in a directory: on one machine's
// disk, or on a filesystem every worker mounts (NFS, a shared volume).
// An artifact is the file <dir>/<run>/<step>/<name>, its SHA-256 the file
// <dir>/<run>/.sha256/<step>/<name> (no step id starts with a dot); both
// are written to <dir>/.tmp first and renamed into place, so a reader
// never sees half a file, and an artifact is listed once its checksum is
// there. No symbolic link is followed beneath the directory.
package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/routines-dev/routines/internal/artifacts"
)

// Store is an artifacts.Store in a directory.
type Store struct {
	root *os.Root
}

const (
	sums = ".sha256" // the folder of a run's checksums
	tmp  = ".tmp"    // where files are written before their rename
)

// Open opens the store in dir, creating it when it is missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	if err := root.MkdirAll(tmp, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	return &Store{root: root}, nil
}

// Close releases the directory.
func (s *Store) Close() error { return s.root.Close() }

// Put implements artifacts.Store.
func (s *Store) Put(ctx context.Context, run, step, name string, r io.ReadSeeker, size int64) (artifacts.Info, error) {
	info := artifacts.Info{Step: step, Name: name, Size: size}
	if err := check(ctx, artifacts.CheckKey(run, step, name)); err != nil {
		return info, err
	}
	var err error
	if err = s.write(path.Join(run, step, name), func(w io.Writer) error {
		info.Sum, err = artifacts.Copy(w, r, size)
		return err
	}); err != nil {
		return info, fmt.Errorf("put artifact %s/%s: %w", step, name, err)
	}
	if err := s.write(path.Join(run, sums, step, name), func(w io.Writer) error {
		_, err := io.WriteString(w, info.Sum)
		return err
	}); err != nil {
		return info, fmt.Errorf("put artifact %s/%s: %w", step, name, err)
	}
	return info, nil
}

// write makes the file name hold what fill writes, or leaves it as it was.
func (s *Store) write(name string, fill func(io.Writer) error) error {
	dir := path.Dir(name)
	if err := s.root.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := s.noLinks(dir); err != nil {
		return err
	}
	t := path.Join(tmp, rand.Text())
	f, err := s.root.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(t, name)
	}
	if err != nil {
		s.root.Remove(t)
	}
	return err
}

// noLinks refuses a symbolic link at any existing component of name: the
// root keeps lookups beneath it, and this keeps them off links.
func (s *Store) noLinks(name string) error {
	p := ""
	for _, part := range strings.Split(name, "/") {
		p = path.Join(p, part)
		fi, err := s.root.Lstat(p)
		if notExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link (not followed)", p)
		}
	}
	return nil
}

// Get implements artifacts.Store.
func (s *Store) Get(ctx context.Context, run, step, name string) (io.ReadCloser, error) {
	if err := check(ctx, artifacts.CheckKey(run, step, name)); err != nil {
		return nil, err
	}
	sum, err := s.readSum(path.Join(run, sums, step, name))
	if err != nil {
		return nil, fmt.Errorf("get artifact %s/%s: %w", step, name, err)
	}
	f, fi, err := s.openRegular(path.Join(run, step, name))
	if err != nil {
		return nil, fmt.Errorf("get artifact %s/%s: %w", step, name, err)
	}
	return artifacts.Verify(f, step, name, fi.Size(), sum), nil
}

// readSum reads a checksum file; without one the artifact is not there
// (its put did not finish).
func (s *Store) readSum(name string) (string, error) {
	f, _, err := s.openRegular(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 65))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// openRegular opens the regular file name, through no link.
func (s *Store) openRegular(name string) (*os.File, fs.FileInfo, error) {
	if err := s.noLinks(name); err != nil {
		return nil, nil, err
	}
	before, err := s.root.Lstat(name)
	if notExist(err) {
		return nil, nil, artifacts.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	// What was opened is what was looked at: no link swapped in between.
	fi, err := f.Stat()
	if err == nil && !os.SameFile(before, fi) {
		err = fmt.Errorf("%s changed while it was opened", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// List implements artifacts.Store.
func (s *Store) List(ctx context.Context, run string) ([]artifacts.Info, error) {
	if err := check(ctx, artifacts.CheckRun(run)); err != nil {
		return nil, err
	}
	top := path.Join(run, sums)
	var out []artifacts.Info
	err := fs.WalkDir(s.root.FS(), top, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == top {
			return fs.SkipAll // no artifacts
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		step, name, _ := strings.Cut(strings.TrimPrefix(p, top+"/"), "/")
		sum, err := s.readSum(p)
		if err != nil {
			return err
		}
		fi, err := s.root.Lstat(path.Join(run, step, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed under the listing
		}
		if err != nil {
			return err
		}
		out = append(out, artifacts.Info{Step: step, Name: name, Size: fi.Size(), Sum: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %s: %w", run, err)
	}
	artifacts.Sort(out)
	return out, nil
}

// Delete implements artifacts.Store.
func (s *Store) Delete(ctx context.Context, run string) error {
	if err := check(ctx, artifacts.CheckRun(run)); err != nil {
		return err
	}
	if err := s.root.RemoveAll(run); err != nil {
		return fmt.Errorf("delete artifacts of run %s: %w", run, err)
	}
	return nil
}

// notExist reports an error of a lookup that found nothing: a missing
// file, or a file where a folder of the path would be.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// check returns err, else the context's error: a local call has nothing
// to cancel once it started.
func check(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	return ctx.Err()
}

var _ artifacts.Store = (*Store)(nil)
