package workspace

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const secret = "OUTSIDE-SECRET-CONTENT"

// setup makes a root with a regular file and, next to it, an outside
// folder holding a file the tests try to reach.
func setup(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(outside, "secret"), secret)
	write(t, filepath.Join(root, "sub", "ok"), "a=1\n")
	return root, outside
}

// readFile opens root and reads name beneath it.
func readFile(root, name string, limit int64) ([]byte, error) {
	d, err := Open(root)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(name, limit)
}

// open opens root for the test.
func open(t testing.TB, root string) *Dir {
	t.Helper()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// opener is one way to resolve beneath a root: openat2, or the walk kept
// for kernels without it. Every case runs against both.
type opener struct {
	name string
	open func(dirfd int, name string, flags int) (int, error)
}

var openers = []opener{
	{"openat2", func(dirfd int, name string, flags int) (int, error) {
		fd, err := openat2(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW)
		return fd, refusal(dirfd, name, err)
	}},
	{"walk", func(dirfd int, name string, flags int) (int, error) {
		fd, err := walk(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW)
		return fd, refusal(dirfd, name, err)
	}},
}

// readWith reads name beneath root as ReadFile does, with one opener.
func readWith(o opener, root, name string, limit int64) ([]byte, error) {
	name, err := local(name)
	if err != nil {
		return nil, err
	}
	dir, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer closeFD(dir)
	fd, err := o.open(dir, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	defer closeFD(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, ErrNotRegular
	case st.Nlink > 1:
		return nil, ErrHardLinked
	}
	return readAll(fd, st.Size, limit)
}

func TestReadFileRefusesWhatAStepPlants(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "leaf")))
	must(t, os.Symlink(outside, filepath.Join(root, "middle")))
	must(t, os.Symlink("sub/ok", filepath.Join(root, "inside")))
	must(t, os.Symlink("/proc/self/environ", filepath.Join(root, "environ")))
	must(t, os.Symlink("/proc/self/root", filepath.Join(root, "procroot")))
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	must(t, os.Link(filepath.Join(outside, "secret"), filepath.Join(root, "hard")))
	write(t, filepath.Join(root, "big"), strings.Repeat("x", 101))
	tests := []struct {
		root, name string
		want       error
	}{
		{root, "sub/ok", nil},
		{root, "sub/../sub/ok", nil},
		{root, "leaf", ErrLink},
		{root, "middle/secret", ErrLink},
		{root, "inside", ErrLink}, // even a link that stays inside: no link at all
		{root, "environ", ErrLink},
		{root, "procroot/etc/passwd", ErrLink},
		{root, "../outside/secret", ErrOutside},
		{root, "sub/../../outside/secret", ErrOutside},
		{root, filepath.Join(outside, "secret"), ErrOutside},
		{root, "fifo", ErrNotRegular},
		{root, "sub", ErrNotRegular},
		{root, "hard", ErrHardLinked},
		{root, "big", ErrTooLarge},
		{root, "missing", fs.ErrNotExist},
		// The magic links of /proc, reached without a planted link.
		{"/proc/self", "root/etc/passwd", ErrLink},
		{"/proc/self", "cwd/x", ErrLink},
		{"/", "proc/self/environ", ErrOutside}, // another mount
	}
	for _, o := range openers {
		for _, tt := range tests {
			got, err := readWith(o, tt.root, tt.name, 100)
			if tt.want == nil && (err != nil || string(got) != "a=1\n") || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("%s: %s: got %q, %v; want %v", o.name, tt.name, got, err, tt.want)
			}
			if strings.Contains(string(got), secret) || err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: %s: the outside content came through", o.name, tt.name)
			}
		}
	}
	// The walk refuses on its own what local would have cleaned away.
	dir, err := openRoot(root)
	must(t, err)
	defer closeFD(dir)
	for _, name := range []string{"../outside/secret", "/etc/passwd"} {
		if fd, err := walk(dir, name, unix.O_RDONLY); err != unix.EXDEV {
			closeFD(fd)
			t.Errorf("walk %s: %v, want EXDEV", name, err)
		}
	}
	// ReadFile itself: the same refusals, and its own size check at open.
	for _, tt := range tests {
		got, err := readFile(tt.root, tt.name, 100)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) || strings.Contains(string(got), secret) {
			t.Errorf("ReadFile %s: got %q, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestReadFileFIFODoesNotHang(t *testing.T) {
	t.Parallel()
	root, _ := setup(t)
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	done := make(chan error, 1)
	go func() {
		_, err := readFile(root, "fifo", MaxOutputBytes)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("fifo: %v, want %v", err, ErrNotRegular)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO hung")
	}
}

func TestReadFileLimitIsExact(t *testing.T) {
	t.Parallel()
	root, _ := setup(t)
	write(t, filepath.Join(root, "f"), strings.Repeat("y", 100))
	if got, err := readFile(root, "f", 100); err != nil || len(got) != 100 {
		t.Fatalf("100 bytes, limit 100: %d, %v", len(got), err)
	}
	if _, err := readFile(root, "f", 99); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "99 bytes") {
		t.Fatalf("100 bytes, limit 99: %v", err)
	}
	if _, err := readFile(root, "f", 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit 0: %v", err)
	}
}

// TestSwapRace swaps a folder for a link to the outside, back and forth,
// while files beneath it are read: since every component is opened from
// the descriptor of the one before (or by the kernel in one lookup), a
// read gets the inside file or a refusal, never the outside one.
func TestSwapRace(t *testing.T) {
	t.Parallel()
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			root, outside := setup(t)
			write(t, filepath.Join(outside, "ok"), secret)
			real, link, dir := filepath.Join(root, "real"), filepath.Join(root, "link"), filepath.Join(root, "sub")
			must(t, os.Mkdir(real, 0o700))
			must(t, os.Symlink(outside, link))
			var stop atomic.Bool
			swapped := make(chan int)
			go func() {
				n := 0
				for ; !stop.Load(); n++ {
					// sub is the real folder, then the link, then the folder again.
					os.Rename(dir, real+"/x")
					os.Rename(link, dir)
					os.Rename(dir, link)
					os.Rename(real+"/x", dir)
				}
				swapped <- n
			}()
			var read, refused int
			for range 3000 {
				got, err := readWith(o, root, "sub/ok", 100)
				if strings.Contains(string(got), secret) {
					t.Fatal("read the outside file through a folder swapped for a link")
				}
				if err == nil {
					read++
				} else {
					refused++
				}
			}
			stop.Store(true)
			n := <-swapped
			t.Logf("%d reads, %d refusals, %d swaps", read, refused, n)
		})
	}
}

func TestCopyFile(t *testing.T) {
	t.Parallel()
	srcRoot, outside := setup(t)
	dstRoot := t.TempDir()
	src, dst := open(t, srcRoot), open(t, dstRoot)
	// A plain copy, into folders it creates.
	must(t, src.CopyFile("sub/ok", dst, "artifacts/step/sub/ok", 100))
	if got, err := os.ReadFile(filepath.Join(dstRoot, "artifacts/step/sub/ok")); err != nil || string(got) != "a=1\n" {
		t.Fatalf("copy: %q %v", got, err)
	}
	// A file the step wrote at the destination itself is replaced.
	must(t, src.CopyFile("sub/ok", dst, "artifacts/step/sub/ok", 100))

	// The source is refused as ReadFile refuses it.
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(srcRoot, "leaf")))
	if err := src.CopyFile("leaf", dst, "artifacts/step/leaf", 100); !errors.Is(err, ErrLink) {
		t.Fatalf("source link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dstRoot, "artifacts/step/leaf")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused source left a copy: %v", err)
	}

	// A link planted in place of a destination folder is not written through.
	must(t, os.Symlink(outside, filepath.Join(dstRoot, "artifacts/step/out")))
	if err := src.CopyFile("sub/ok", dst, "artifacts/step/out/x.txt", 100); !errors.Is(err, ErrLink) {
		t.Fatalf("destination folder link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "x.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the copy was written outside: %v", err)
	}
	// A link in place of the destination file is replaced, not written through.
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dstRoot, "artifacts/step/y.txt")))
	must(t, src.CopyFile("sub/ok", dst, "artifacts/step/y.txt", 100))
	if got, _ := os.ReadFile(filepath.Join(outside, "secret")); string(got) != secret {
		t.Fatalf("the outside file was overwritten: %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dstRoot, "artifacts/step/y.txt")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("destination: %v %v", fi, err)
	}
	for _, name := range []string{"../x", "/tmp/x", "artifacts/../../x"} {
		if err := src.CopyFile("sub/ok", dst, name, 100); !errors.Is(err, ErrOutside) {
			t.Errorf("destination %s: %v", name, err)
		}
	}

	// Too large: refused at open, and no partial copy stays.
	write(t, filepath.Join(srcRoot, "big"), strings.Repeat("x", 101))
	if err := src.CopyFile("big", dst, "big", 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dstRoot, "big")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused copy stayed: %v", err)
	}
}

func TestMkdirAll(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	d := open(t, root)
	must(t, d.MkdirAll("artifacts/step"))
	must(t, d.MkdirAll("artifacts/step")) // again: it exists
	if fi, err := os.Stat(filepath.Join(root, "artifacts/step")); err != nil || !fi.IsDir() {
		t.Fatalf("mkdir: %v %v", fi, err)
	}
	must(t, os.Symlink(outside, filepath.Join(root, "artifacts/other")))
	if err := d.MkdirAll("artifacts/other/deeper"); !errors.Is(err, ErrLink) {
		t.Fatalf("through a link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "deeper")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("created outside: %v", err)
	}
	if err := d.MkdirAll("../escape"); !errors.Is(err, ErrOutside) {
		t.Fatalf("..: %v", err)
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	must(t, os.MkdirAll(filepath.Join(root, Artifacts, "step"), 0o700))
	write(t, filepath.Join(root, Artifacts, "step", "kept"), "k")
	write(t, filepath.Join(root, OutputName("step", 1)), "a=1\n")
	must(t, os.Symlink(outside, filepath.Join(root, "link")))
	must(t, os.Symlink(outside, filepath.Join(root, "sub", "nested")))
	must(t, Clean(root))
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != Artifacts {
		t.Fatalf("left %v", entries)
	}
	if got, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(got) != secret {
		t.Fatalf("cleaning removed what a link pointed at: %q %v", got, err)
	}
	// Without artifacts, the workspace goes.
	must(t, os.RemoveAll(filepath.Join(root, Artifacts)))
	write(t, filepath.Join(root, "tmp"), "t")
	must(t, Clean(root))
	if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty workspace kept: %v", err)
	}
	must(t, Clean(root)) // nothing there: nothing to do
}

// BenchmarkReadOutputs is the per-step cost of the outputs file: absent
// (most steps) and a few lines, against what the run step did before
// (os.Stat, os.Remove, os.ReadFile, which follows links).
func BenchmarkReadOutputs(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "small"), []byte("a=1\nb=2\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"absent", "small"} {
		// What the run step does: open the workspace, clear the outputs
		// file before the step, read it after.
		b.Run("workspace/"+name, func(b *testing.B) {
			for b.Loop() {
				d, _ := Open(root)
				d.Remove("gone")
				d.ReadFile(name, MaxOutputBytes)
				d.Close()
			}
		})
		b.Run("os/"+name, func(b *testing.B) {
			for b.Loop() {
				os.Stat(root)
				os.Remove(filepath.Join(root, "gone"))
				os.ReadFile(filepath.Join(root, name))
			}
		})
	}
}

func TestCreateAndRemove(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	ws := filepath.Join(root, "runs", "01RUN")
	d, err := Create(ws)
	must(t, err)
	defer d.Close()
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(ws, "leaf")))
	must(t, d.Remove("leaf")) // the link goes, not its target
	must(t, d.Remove("leaf")) // absent: no error
	must(t, os.Symlink(outside, filepath.Join(ws, "dir")))
	if err := d.Remove("dir/secret"); !errors.Is(err, ErrLink) {
		t.Fatalf("remove through a link: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(got) != secret {
		t.Fatalf("the outside file: %q %v", got, err)
	}
	// The descriptor, not the path: the workspace renamed away and a link
	// put in its place leaves the reads where they were.
	write(t, filepath.Join(ws, "out"), "a=1\n")
	must(t, os.Rename(ws, ws+".moved"))
	must(t, os.Symlink(outside, ws))
	if got, err := d.ReadFile("out", 100); err != nil || string(got) != "a=1\n" {
		t.Fatalf("after the swap: %q %v", got, err)
	}
	if _, err := d.ReadFile("secret", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the swap, the outside file: %v", err)
	}
}

// failingReader gives some bytes, then fails.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	r.n--
	p[0] = 'x'
	return 1, nil
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	root, _ := setup(t)
	d := open(t, root)
	must(t, d.WriteFile("a/b/c.txt", strings.NewReader("hello"), 5))
	if got, err := os.ReadFile(filepath.Join(root, "a/b/c.txt")); err != nil || string(got) != "hello" {
		t.Fatalf("write: %q %v", got, err)
	}
	// A reader that fails, or holds more than the limit, leaves nothing.
	if err := d.WriteFile("a/b/c.txt", &failingReader{n: 3}, 5); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("failing reader: %v", err)
	}
	if err := d.WriteFile("a/big", strings.NewReader("123456"), 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("reader over the limit: %v", err)
	}
	for _, name := range []string{"a/b/c.txt", "a/big"} {
		if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s stayed after a failed write: %v", name, err)
		}
	}
}

func TestWalk(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	d := open(t, root)
	must(t, os.MkdirAll(filepath.Join(root, "art/out/deep"), 0o700))
	write(t, filepath.Join(root, "art/report.txt"), "r")
	write(t, filepath.Join(root, "art/out/deep/data"), "dd")
	write(t, filepath.Join(root, "art/a.txt"), "aaa")
	walk := func(limit int64) (string, error) {
		var got []string
		err := d.Walk("art", limit, func(rel string, f *os.File, size int64) error {
			b, err := io.ReadAll(f)
			got = append(got, fmt.Sprintf("%s=%s(%d)", rel, b, size))
			return err
		})
		return strings.Join(got, " "), err
	}
	got, err := walk(100)
	if want := "a.txt=aaa(3) out/deep/data=dd(2) report.txt=r(1)"; err != nil || got != want {
		t.Fatalf("walk: %s, %v; want %s", got, err, want)
	}
	if _, err := walk(2); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "a.txt") {
		t.Fatalf("a file over the limit: %v", err)
	}
	// What a step may plant there stops the walk, named, and is not read.
	for name, plant := range map[string]func(p string) error{
		"file link":   func(p string) error { return os.Symlink(filepath.Join(outside, "secret"), p) },
		"folder link": func(p string) error { return os.Symlink(outside, p) },
		"fifo":        func(p string) error { return unix.Mkfifo(p, 0o600) },
		"hard link":   func(p string) error { return os.Link(filepath.Join(root, "sub/ok"), p) },
	} {
		p := filepath.Join(root, "art/out/zz")
		must(t, plant(p))
		got, err := walk(100)
		if err == nil || !strings.Contains(err.Error(), "out/zz") || strings.Contains(got, "OUTSIDE") {
			t.Errorf("%s: walked %s, %v", name, got, err)
		}
		must(t, os.Remove(p))
	}
	if err := d.Walk("missing", 100, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing folder: %v", err)
	}
	must(t, os.Symlink(filepath.Join(root, "art"), filepath.Join(root, "linked")))
	if err := d.Walk("linked", 100, nil); !errors.Is(err, ErrLink) {
		t.Fatalf("a link as the folder: %v", err)
	}
}

func TestWalkBounds(t *testing.T) {
	t.Parallel()
	root, _ := setup(t)
	d := open(t, root)
	deep := filepath.Join(root, "deep", strings.Repeat("d/", MaxWalkDepth))
	must(t, os.MkdirAll(deep, 0o700))
	if err := d.Walk("deep", 100, nil); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("deep folders: %v", err)
	}
	must(t, os.Mkdir(filepath.Join(root, "many"), 0o700))
	for i := range MaxWalkEntries + 1 {
		f, err := os.Create(filepath.Join(root, "many", strconv.Itoa(i)))
		must(t, err)
		f.Close()
	}
	calls := 0
	err := d.Walk("many", 100, func(string, *os.File, int64) error { calls++; return nil })
	if err == nil || !strings.Contains(err.Error(), "more than") || calls != MaxWalkEntries {
		t.Fatalf("many files: %v after %d", err, calls)
	}
}

func TestRename(t *testing.T) {
	t.Parallel()
	root, outside := setup(t)
	d := open(t, root)
	must(t, d.WriteFile(".fetched/step/f", strings.NewReader("x"), 1))
	must(t, d.Rename(".fetched/step", "artifacts/step"))
	if got, err := os.ReadFile(filepath.Join(root, "artifacts/step/f")); err != nil || string(got) != "x" {
		t.Fatalf("renamed: %q %v", got, err)
	}
	must(t, os.Symlink(outside, filepath.Join(root, "link")))
	if err := d.Rename("sub", "link/sub"); !errors.Is(err, ErrLink) {
		t.Fatalf("into a linked folder: %v", err)
	}
	if err := d.Rename("sub", "../sub"); !errors.Is(err, ErrOutside) {
		t.Fatalf("out of the root: %v", err)
	}
}
