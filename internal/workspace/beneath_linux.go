package workspace

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// resolve is how every path beneath a root is resolved: inside the root,
// through no symbolic link (magic /proc links included) and no mount point
// (a bind mount planted on the path).
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// noOpenat2 is set once openat2 answered ENOSYS (kernels before 5.6):
// walk, which costs a syscall per component, does its work from then on.
var noOpenat2 atomic.Bool

// openRoot opens dir, a directory of the engine, as a handle that only
// anchors lookups beneath it.
func openRoot(dir string) (int, error) {
	for {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
		}
		return fd, nil
	}
}

func closeFD(fd int) error { return unix.Close(fd) }

// dirFlags open a folder only to anchor lookups beneath it.
const dirFlags = unix.O_PATH | unix.O_DIRECTORY

// openBeneath opens name beneath the directory dirfd with flags, following
// no link. name is relative and stays beneath dirfd.
func openBeneath(dirfd int, name string, flags int) (int, error) {
	name, err := local(name)
	if err != nil {
		return -1, err
	}
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		fd, err := openat2(dirfd, name, flags)
		switch err {
		case unix.ENOSYS:
			noOpenat2.Store(true)
		case unix.EPERM:
			// Seccomp filters of older container runtimes answer EPERM
			// for a syscall they do not know; the walk is as strict.
		default:
			return fd, refusal(dirfd, name, err)
		}
	}
	fd, err := walk(dirfd, name, flags)
	return fd, refusal(dirfd, name, err)
}

// local cleans name, which must stay beneath its directory by its letters
// alone (not absolute, no ".." above the start).
func local(name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", ErrOutside
	}
	return filepath.Clean(name), nil
}

func openat2(dirfd int, name string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Mode: 0, Resolve: resolve}
	var err error
	// EAGAIN: a rename beneath dirfd raced the lookup; the kernel asks
	// for a retry rather than risk a wrong answer.
	for range 8 {
		var fd int
		fd, err = unix.Openat2(dirfd, name, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
	return -1, err
}

// walk is openat2 for kernels without it: one openat with O_NOFOLLOW per
// component, each from the descriptor of the one before, so nothing
// swapped in between a check and a use is followed. A component on
// another device than dirfd stands for RESOLVE_NO_XDEV (the /proc of a
// magic link is one).
func walk(dirfd int, name string, flags int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return -1, err
	}
	dev := st.Dev
	parts := strings.Split(name, "/")
	fd := dirfd
	for i, part := range parts {
		if part == ".." || part == "" { // a name local did not clean
			if fd != dirfd {
				closeFD(fd)
			}
			return -1, unix.EXDEV
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags
		}
		next, err := openat(fd, part, f, 0)
		if fd != dirfd {
			closeFD(fd)
		}
		if err != nil {
			return -1, err
		}
		if err := unix.Fstat(next, &st); err != nil || st.Dev != dev {
			closeFD(next)
			if err == nil {
				err = unix.EXDEV
			}
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// refusal turns the errno of a lookup beneath dirfd into the reason it was
// refused. O_DIRECTORY|O_NOFOLLOW meets a link with ENOTDIR, so ENOTDIR
// looks whether a link is in the way.
func refusal(dirfd int, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case err == unix.ELOOP:
		return ErrLink
	case err == unix.EXDEV:
		return ErrOutside
	case err == unix.ENXIO:
		return ErrNotRegular // a socket
	case err == unix.ENOTDIR && hasLink(dirfd, name):
		return ErrLink
	}
	return &fs.PathError{Op: "open", Path: name, Err: err}
}

// hasLink reports whether a component of name beneath dirfd is a link.
func hasLink(dirfd int, name string) bool {
	for p := name; p != "." && p != "/"; p = filepath.Dir(p) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return true
		}
	}
	return false
}

// openRegular opens name beneath dirfd for reading: it must be a regular
// file (it is opened non-blocking, so a FIFO cannot hang the engine before
// it is refused), with a single link (a hard link names a file the step
// could not name otherwise) and at most limit bytes.
func openRegular(dirfd int, name string, limit int64) (fd int, size int64, err error) {
	fd, err = openBeneath(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return -1, 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		closeFD(fd)
		return -1, 0, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = ErrNotRegular
	case st.Nlink > 1:
		err = ErrHardLinked
	case st.Size > limit:
		err = tooLarge(limit)
	}
	if err != nil {
		closeFD(fd)
		return -1, 0, err
	}
	return fd, st.Size, nil
}

// readAll reads fd to its end, refusing more than limit bytes: size, the
// size at open, only sizes the buffer.
func readAll(fd int, size, limit int64) ([]byte, error) {
	buf := make([]byte, min(size, limit)+1)
	n := 0
	for {
		if n == len(buf) {
			if int64(n) > limit {
				return nil, tooLarge(limit)
			}
			buf = append(buf, make([]byte, min(int64(len(buf)), limit+1-int64(n)))...)
		}
		m, err := unix.Read(fd, buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, fmt.Errorf("read: %w", err)
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
}

// mkdirBeneath creates each missing folder of name beneath dirfd and
// returns a handle of the last; a link at any component is refused.
func mkdirBeneath(dirfd int, name string) (int, error) {
	fd, err := unix.Dup(dirfd)
	if err != nil {
		return -1, err
	}
	if name == "." {
		return fd, nil
	}
	for _, part := range strings.Split(name, "/") {
		if err := unix.Mkdirat(fd, part, 0o700); err != nil && err != unix.EEXIST {
			closeFD(fd)
			return -1, &fs.PathError{Op: "mkdir", Path: name, Err: err}
		}
		next, err := openBeneath(fd, part, dirFlags)
		closeFD(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// createExcl creates the file name in the folder dirfd for writing. What
// is there already is unlinked first, never opened: a link stays a link.
func createExcl(dirfd int, name string) (int, error) {
	if err := removeAt(dirfd, name); err != nil {
		return -1, err
	}
	// O_EXCL: a file planted again since the unlink fails the copy.
	fd, err := openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	return fd, nil
}

// removeAt unlinks the file or link name in the folder dirfd; an absent
// file is no error.
func removeAt(dirfd int, name string) error {
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// renameAt renames the entry name in the folder from to newname in the
// folder to; neither name is followed when it is a link.
func renameAt(from int, name string, to int, newname string) error {
	if err := unix.Renameat(from, name, to, newname); err != nil {
		return &fs.PathError{Op: "rename", Path: name, Err: err}
	}
	return nil
}
