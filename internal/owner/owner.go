// Package owner gives each process that executes runs (a daemon, a
// run-once) an identity whose liveness another process on the same host
// can check at once, without waiting for a lease to expire: the owner id
// recorded on the runs it holds, and an exclusive flock on the file
// <dir>/<id>.lock that the process holds for its whole life. The kernel
// releases the lock when the process dies, however it dies (SIGKILL
// included), so a lock that can be taken is the lock of a dead owner.
// Owners on other hosts (remote mode) have no file here: their runs are
// taken over when their leases expire.
package owner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/oklog/ulid/v2"
)

// ext ends the name of every lock file.
const ext = ".lock"

// Owner is this process's identity on the runs it executes.
type Owner struct {
	id   string
	path string
	f    *os.File // holds the lock
}

// Acquire makes a new owner id for this process and takes the lock that
// says it lives, in dir (created when missing). The id is unique: a pid
// reused after a crash never passes for the dead owner. Release it when
// the process stops executing runs.
func Acquire(dir string) (*Owner, error) {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, host)
	id := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), ulid.Make())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acquire owner: %w", err)
	}
	// The file is locked under a temporary name and renamed into place,
	// so whoever finds <id>.lock finds it locked while the owner lives.
	path := filepath.Join(dir, id+ext)
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("acquire owner: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("acquire owner: lock %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("acquire owner: %w", err)
	}
	return &Owner{id: id, path: path, f: f}, nil
}

// ID returns the owner id, recorded as the worker of the runs it holds.
func (o *Owner) ID() string { return o.id }

// Release removes the lock file and drops the lock: the owner holds no
// run any more (a process that dies without it is just as dead).
func (o *Owner) Release() error {
	rmErr := os.Remove(o.path)
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("release owner: %w", err)
	}
	if rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		return fmt.Errorf("release owner: %w", rmErr)
	}
	return nil
}

// Dir tells which owners with a lock file in it are dead.
type Dir string

// Dead reports whether the owner id is known dead: its lock file is in
// the directory and nobody holds its lock. An owner with no file there
// (on another host, or gone) is not known dead.
func (d Dir) Dead(id string) bool {
	if id == "" || strings.ContainsRune(id, os.PathSeparator) {
		return false
	}
	f, err := os.OpenFile(filepath.Join(string(d), id+ext), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close() // drops the lock, if taken
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

// Forget removes the lock file of a dead owner, once its runs were taken
// over: the owner is checked no more.
func (d Dir) Forget(id string) {
	if id == "" || strings.ContainsRune(id, os.PathSeparator) {
		return
	}
	os.Remove(filepath.Join(string(d), id+ext))
}
