package bundle

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// noFollow is not needed on Windows: O_EXCL alone refuses an existing
// name, and the tree check lets no link be above one.
const noFollow = 0

// tryLock takes a shared or an exclusive LockFileEx lock on the first byte
// of f without waiting; held reports that another handle has a lock that
// excludes it. Windows drops it when the handle closes or the process
// ends.
func tryLock(f *os.File, shared bool) (held bool, err error) {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if !shared {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	var ol windows.Overlapped
	err = windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return true, nil
	}
	return false, err
}
