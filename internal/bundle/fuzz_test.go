package bundle

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract extracts mutated tar streams (gzipped here, so the fuzzer
// works on the tar itself) and checks that, accepted or refused, nothing is
// written outside the destination, and that an accepted tree is read-only,
// holds only files, directories and links that resolve inside it, and
// matches what Inspect says of the same archive.
func FuzzExtract(f *testing.F) {
	for _, c := range hostile {
		f.Add(tarball(f, c.entries...))
	}
	f.Add(tarball(f, dirEntry("a"), reg("a/b.txt", "b"), link("l", "a/b.txt"), link("a/up", "..")))
	f.Add(tarball(f, reg("a/b/c", "c"), link("a/b/d", "../../a"), link("e", "a/b/d/b/c")))
	f.Fuzz(func(t *testing.T, data []byte) {
		base, dest := extractBase(t)
		limits := Limits{MaxBytes: 1 << 20, MaxEntries: 100}
		archive := gz(t, data)
		err := Extract(bytes.NewReader(archive), dest, limits)
		assertUntouched(t, base, err == nil)
		m, ierr := Inspect(bytes.NewReader(archive), limits)
		if (err == nil) != (ierr == nil) {
			t.Fatalf("Extract: %v, but Inspect: %v", err, ierr)
		}
		if err != nil {
			return
		}
		files := 0
		filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			info, err := d.Info()
			if err != nil {
				t.Fatal(err)
			}
			switch mode := info.Mode(); {
			case mode&fs.ModeSymlink != 0:
				files++
				real, err := filepath.EvalSymlinks(p)
				if err == nil && real != dest && !strings.HasPrefix(real, dest+string(filepath.Separator)) {
					t.Fatalf("%s leads to %s, outside %s", p, real, dest)
				}
			case mode.IsDir():
				if mode.Perm() != modeDir {
					t.Fatalf("%s: mode %v", p, mode)
				}
			case mode.IsRegular():
				files++
				if mode.Perm() != modeFile && mode.Perm() != modeExec {
					t.Fatalf("%s: mode %v", p, mode)
				}
			default:
				t.Fatalf("%s: a %v", p, mode)
			}
			return nil
		})
		if files != len(m.Files) {
			t.Fatalf("extracted %d files and links, Inspect lists %d", files, len(m.Files))
		}
	})
}
