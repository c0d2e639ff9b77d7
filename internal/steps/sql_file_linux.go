package steps

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// checkSQLFile walks from realRoot to the file rel with openat2
// (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS), one directory descriptor after
// the other, so that nothing swapped in between a check and the next step
// is followed; it creates what is missing when root is writable.
func checkSQLFile(root sqlRoot, realRoot, rel string) error {
	fd, err := unix.Open(realRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", realRoot, err)
	}
	defer func() { unix.Close(fd) }()
	parts := strings.Split(rel, string(filepath.Separator))
	leaf := parts[len(parts)-1]
	for i, name := range parts[:len(parts)-1] {
		next, err := openBeneath(fd, name)
		if errors.Is(err, unix.ENOENT) && !root.readOnly {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create the directory %s: %w", filepath.Join(parts[:i+1]...), err)
			}
			next, err = openBeneath(fd, name)
		}
		if err != nil {
			return sqlWalkError(filepath.Join(parts[:i+1]...), err)
		}
		unix.Close(fd)
		fd = next
	}
	// SQLite opens the file and its journals by name: none may be a link.
	for _, name := range []string{leaf, leaf + "-wal", leaf + "-shm", leaf + "-journal"} {
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT) && name == leaf:
			if root.readOnly {
				return fmt.Errorf("does not exist, and %s is only in permissions.read, so it is not created", root.dir)
			}
			// An empty file is an empty database to SQLite.
			nfd, err := unix.Openat(fd, leaf, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			switch {
			case err == nil:
				unix.Close(nfd)
			case !errors.Is(err, unix.EEXIST):
				return fmt.Errorf("create %s: %w", leaf, err)
			}
		case errors.Is(err, unix.ENOENT):
		case err != nil:
			return fmt.Errorf("stat %s: %w", name, err)
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("%s is a symlink: a sql step opens no file through a link", name)
		case st.Mode&unix.S_IFMT == unix.S_IFDIR && name == leaf:
			return errors.New("is a directory, not a SQLite file")
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			return fmt.Errorf("%s is not a regular file", name)
		case st.Nlink > 1:
			// A hard link could be the store or another project's file.
			return fmt.Errorf("%s has %d hard links: a sql step opens only a file with one", name, st.Nlink)
		}
	}
	return nil
}

// openBeneath opens the directory name under dirfd, following no link.
func openBeneath(dirfd int, name string) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// sqlWalkError says why the directory dir on the way to the file did not open.
func sqlWalkError(dir string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s is a symlink: a sql step opens no file through a link", dir)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s is not a directory", dir)
	}
	return fmt.Errorf("open the directory %s: %w", dir, err)
}
