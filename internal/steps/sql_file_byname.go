package steps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkSQLFileByName is checkSQLFile for systems without openat2: it
// checks from realRoot to the file rel by name, with Lstat at each
// component, and creates what is missing when root is writable. A link
// swapped in between a check and SQLite's open could be followed, but off
// Linux no step process runs beside the engine to plant one (run steps
// need Linux), and openSQLite still compares the name SQLite opened with
// the one checked. Hard links are not counted: the count is not portable,
// and only a step's process could make one.
func checkSQLFileByName(root sqlRoot, realRoot, rel string) error {
	parts := strings.Split(rel, string(filepath.Separator))
	leaf := parts[len(parts)-1]
	dir := realRoot
	for i, name := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, name)
		shown := filepath.Join(parts[:i+1]...)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) && !root.readOnly {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create the directory %s: %w", shown, err)
			}
			fi, err = os.Lstat(dir)
		}
		switch {
		case err != nil:
			return fmt.Errorf("open the directory %s: %w", shown, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: a sql step opens no file through a link", shown)
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", shown)
		}
	}
	// SQLite opens the file and its journals by name: none may be a link.
	for _, name := range []string{leaf, leaf + "-wal", leaf + "-shm", leaf + "-journal"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist) && name == leaf:
			if root.readOnly {
				return fmt.Errorf("does not exist, and %s is only in permissions.read, so it is not created", root.dir)
			}
			// An empty file is an empty database to SQLite.
			f, err := os.OpenFile(filepath.Join(dir, leaf), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			switch {
			case err == nil:
				f.Close()
			case !errors.Is(err, fs.ErrExist):
				return fmt.Errorf("create %s: %w", leaf, err)
			}
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("stat %s: %w", name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: a sql step opens no file through a link", name)
		case fi.IsDir() && name == leaf:
			return errors.New("is a directory, not a SQLite file")
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file", name)
		}
	}
	return nil
}
