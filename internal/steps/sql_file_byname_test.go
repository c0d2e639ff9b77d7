package steps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSQLFileByName: the check of systems without openat2 refuses
// what the openat2 walk refuses (TestEscapeSQLSymlinkDB,
// TestSQLPathConfinement), and creates what a writable root lacks.
func TestCheckSQLFileByName(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	for name, target := range map[string]string{"link": outside, "dangling.db": filepath.Join(outside, "new.db"), "j.db-wal": filepath.Join(outside, "wal")} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"dir.db", "ro"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writable, readOnly := sqlRoot{dir: root}, sqlRoot{dir: root, readOnly: true}
	for _, tt := range []struct {
		root      sqlRoot
		rel, want string
	}{
		{writable, "link/through.db", "link is a symlink"},
		{writable, filepath.Join("sub", "link", "x.db"), ""}, // sub and sub/link are new directories
		{writable, "dangling.db", "dangling.db is a symlink"},
		{writable, "j.db", "j.db-wal is a symlink"},
		{writable, "dir.db", "is a directory"},
		{writable, filepath.Join("file", "x.db"), "file is not a directory"},
		{readOnly, filepath.Join("ro", "missing.db"), "only in permissions.read"},
		{readOnly, filepath.Join("nodir", "missing.db"), "open the directory nodir"},
		{writable, filepath.Join("new", "deeper", "x.db"), ""},
	} {
		err := checkSQLFileByName(tt.root, root, tt.rel)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.rel, err, tt.want)
		}
	}
	for _, created := range []string{filepath.Join("new", "deeper", "x.db"), filepath.Join("sub", "link", "x.db")} {
		if fi, err := os.Lstat(filepath.Join(root, created)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s was not created: %v", created, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files were made outside the root: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(root, "ro", "missing.db")); !os.IsNotExist(err) {
		t.Errorf("a file was created under a read-only root: %v", err)
	}
}
