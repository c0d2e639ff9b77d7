package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// sealedCopySuffix names, beside a run's workspace, the run's private copy
// of a sealed routine directory. It is not in the workspace, which steps
// may write: a step could put a link there in place of the directory the
// next step is confined to.
const sealedCopySuffix = ".routine"

// privateCopy copies the sealed routine directory src (a pushed revision,
// extracted and checked: regular files, directories and links that stay
// inside) to dst, writable, unless an earlier attempt of the run on this
// machine made it already: a resumed run finds what its steps left there,
// as in a routine directory of its own.
func privateCopy(src, dst string) (string, error) {
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(tmp, rel)
		switch {
		case e.IsDir():
			return os.Mkdir(to, 0o755)
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				return err
			}
			return copyFile(path, to, 0o644|info.Mode().Perm()&0o111)
		}
		return fmt.Errorf("%s: not a file, directory or link", rel)
	})
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return "", errors.Join(err, os.RemoveAll(tmp))
	}
	return dst, nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
