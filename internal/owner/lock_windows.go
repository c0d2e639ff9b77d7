package owner

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/windows"
)

// fileName is the name of the lock file of the owner id: a colon would
// name an NTFS stream, so it becomes an underscore.
func fileName(id string) string { return strings.ReplaceAll(id, ":", "_") + ext }

// lock takes an exclusive LockFileEx lock on the first byte of f without
// waiting. Windows drops it when the handle closes or the process ends.
func lock(f *os.File) error {
	var ol windows.Overlapped
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// heldElsewhere reports whether an error of lock says another handle
// holds the lock.
func heldElsewhere(err error) bool { return errors.Is(err, windows.ERROR_LOCK_VIOLATION) }

// createLocked creates the lock file path and locks it. Windows renames
// no file that is open, so it is created in place: a process that looks
// at it before the lock is taken may find it unlocked, but no run names
// this new owner yet, so none is taken over for it.
func createLocked(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// closeAndRemove drops the lock of f and removes its file path: Windows
// removes no file that is open.
func closeAndRemove(f *os.File, path string) (closeErr, rmErr error) {
	closeErr = f.Close()
	return closeErr, os.Remove(path)
}
