// Package owner gives each process that executes runs (a daemon, a
// run-once) an identity whose liveness another process on the same host
// can check at once, without waiting for a lease to expire: the owner id
// recorded on the runs it holds, and an exclusive lock (flock; LockFileEx
// on Windows) on the file <dir>/<id>.lock that the process holds for its
// whole life. The kernel releases the lock when the process dies, however
// it dies (SIGKILL included), so a lock that can be taken is the lock of a
// dead owner. TryLock gives the same kind of lock on any file.
// Owners on other hosts (remote mode) have no file here: their runs are
// taken over when their leases expire.
package owner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	path := filepath.Join(dir, fileName(id))
	f, err := createLocked(path)
	if err != nil {
		return nil, fmt.Errorf("acquire owner: %w", err)
	}
	return &Owner{id: id, path: path, f: f}, nil
}

// ID returns the owner id, recorded as the worker of the runs it holds.
func (o *Owner) ID() string { return o.id }

// Release removes the lock file and drops the lock: the owner holds no
// run any more (a process that dies without it is just as dead).
func (o *Owner) Release() error {
	closeErr, rmErr := closeAndRemove(o.f, o.path)
	if closeErr != nil {
		return fmt.Errorf("release owner: %w", closeErr)
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
	path, ok := d.file(id)
	if !ok {
		return false
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close() // drops the lock, if taken
	return lock(f) == nil
}

// Forget removes the lock file of a dead owner, once its runs were taken
// over: the owner is checked no more.
func (d Dir) Forget(id string) {
	if path, ok := d.file(id); ok {
		os.Remove(path)
	}
}

// file is the path of the lock file of id in d; ok is false for an id
// that names no file in d.
func (d Dir) file(id string) (path string, ok bool) {
	if id == "" || strings.ContainsAny(id, "/"+string(os.PathSeparator)) {
		return "", false
	}
	return filepath.Join(string(d), fileName(id)), true
}

// TryLock takes an exclusive lock on the file path, created when missing,
// without waiting: held reports that another process (or another TryLock
// of this one) has it. The lock lasts until release or the death of the
// process, however it dies, so a lock that can be taken belongs to no
// live process. The file stays: removing it would let a process that
// opened it before the removal lock it while another locks its successor.
func TryLock(path string) (release func(), held bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		if heldElsewhere(err) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, false, nil
}
