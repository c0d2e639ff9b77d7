//go:build unix

package bundle

import (
	"errors"
	"os"
	"syscall"
)

// noFollow makes an open fail on a link rather than follow it.
const noFollow = syscall.O_NOFOLLOW

// tryLock takes a shared or an exclusive flock of f without waiting; held
// reports that another open file has a lock that excludes it. The kernel
// drops the lock when f is closed or its process dies, however it dies.
func tryLock(f *os.File, shared bool) (held bool, err error) {
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
