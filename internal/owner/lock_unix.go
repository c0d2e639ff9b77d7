//go:build unix

package owner

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fileName is the name of the lock file of the owner id.
func fileName(id string) string { return id + ext }

// lock takes the exclusive flock of f without waiting.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// heldElsewhere reports whether an error of lock says another open file
// holds the lock.
func heldElsewhere(err error) bool { return errors.Is(err, syscall.EWOULDBLOCK) }

// createLocked creates the lock file path and locks it. It is locked under
// a temporary name and renamed into place, so whoever finds it finds it
// locked while the owner lives.
func createLocked(path string) (*os.File, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("lock %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// closeAndRemove removes the lock file f of path, then drops its lock: no
// one finds the file unlocked meanwhile.
func closeAndRemove(f *os.File, path string) (closeErr, rmErr error) {
	rmErr = os.Remove(path)
	return f.Close(), rmErr
}
