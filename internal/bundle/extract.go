package bundle

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// The modes of an extracted tree: nothing in it is writable, so the steps
// of a run cannot change the revision they run (nor the next run's).
const (
	modeFile = 0o444
	modeExec = 0o555
	modeDir  = 0o555
)

// tmpMark is in the name of an extraction under way, beside its
// destination, and of a tree being removed; neither is a complete tree.
const tmpMark = ".tmp-"

// Extract writes the tar.gz r, read as hostile data (see Inspect for what
// it refuses), to the directory dest, which must not exist. The tree is
// written in a temporary sibling of dest and renamed into place once
// complete, so dest is either missing or whole, whatever happens: a failed
// extraction leaves nothing, and of two extractions to one dest the second
// fails with an error that matches fs.ErrExist. Files are created
// exclusively, without following links, in directories Extract made; links
// are made last. The tree is read-only: files 0444 (0555 when executable),
// directories 0555.
func Extract(r io.Reader, dest string, limits Limits) error {
	_, err := extract(r, dest, limits)
	return err
}

// extract is Extract, returning the bytes of the files written.
func extract(r io.Reader, dest string, limits Limits) (int64, error) {
	dest = filepath.Clean(dest)
	if _, err := os.Lstat(dest); err == nil {
		return 0, fmt.Errorf("extract to %s: %w", dest, fs.ErrExist)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+tmpMark)
	if err != nil {
		return 0, fmt.Errorf("extract to %s: %w", dest, err)
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		RemoveTree(tmp)
		return 0, fmt.Errorf("extract to %s: %w", dest, err)
	}
	w := &diskSink{root: root}
	err = readArchive(r, limits, w)
	if err == nil {
		err = w.seal()
	}
	root.Close()
	if err == nil {
		err = os.Chmod(tmp, modeDir)
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		RemoveTree(tmp)
		return 0, fmt.Errorf("extract to %s: %w", dest, err)
	}
	return w.size, nil
}

// diskSink writes an archive's entries beneath root, a directory it alone
// writes to.
type diskSink struct {
	root *os.Root
	dirs []string
	size int64
}

func (w *diskSink) dir(name string) error {
	w.dirs = append(w.dirs, name)
	return w.root.Mkdir(name, 0o700)
}

func (w *diskSink) file(name string, exec bool, size int64, r io.Reader) error {
	// O_EXCL refuses a name that exists, a link included; O_NOFOLLOW says
	// so twice where it exists. The root keeps any link above it from
	// leading out, though the tree check lets none be there.
	f, err := w.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	mode := os.FileMode(modeFile)
	if exec {
		mode = modeExec
	}
	_, err = io.CopyN(f, r, size)
	if err == nil {
		err = f.Chmod(mode) // by descriptor, whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	w.size += size
	return err
}

func (w *diskSink) link(name, target string) error {
	return w.root.Symlink(target, name)
}

// seal makes the directories read-only, deepest first, once everything is
// written.
func (w *diskSink) seal() error {
	for _, dir := range slices.Backward(w.dirs) {
		if err := w.root.Chmod(dir, modeDir); err != nil {
			return err
		}
	}
	return nil
}

// RemoveTree removes a tree Extract made, making its directories writable
// first: a read-only directory's entries cannot be removed (but by root).
// It does not follow links: WalkDir does not, and a link is never a
// directory to it.
func RemoveTree(dir string) error {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
