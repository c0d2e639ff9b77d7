package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// hostile are archives Extract must refuse, each with what its error says.
var hostile = []struct {
	name    string
	entries []tarEntry
	limits  Limits
	want    []string
}{
	{"zip slip", []tarEntry{reg("ok.txt", "x"), reg("../../x", "evil")}, Limits{}, []string{`entry "../../x"`, `".."`}},
	{"climbing inside", []tarEntry{reg("a/../../x", "evil")}, Limits{}, []string{`entry "a/../../x"`, `".."`}},
	{"absolute", []tarEntry{reg("/tmp/evil", "evil")}, Limits{}, []string{`entry "/tmp/evil"`, "absolute"}},
	{"dot", []tarEntry{reg("./a", "x")}, Limits{}, []string{`entry "./a"`, "not clean"}},
	{"empty element", []tarEntry{reg("a//b", "x")}, Limits{}, []string{`entry "a//b"`, "not clean"}},
	{"top itself", []tarEntry{dirEntry(".")}, Limits{}, []string{`entry "."`, "empty name"}},
	{"backslash", []tarEntry{reg(`..\..\x`, "x")}, Limits{}, []string{"backslash"}},
	{"absolute link", []tarEntry{link("etc", "/etc")}, Limits{}, []string{`entry "etc"`, "absolute path"}},
	{"climbing link", []tarEntry{dirEntry("d"), link("d/up", "../../outside")}, Limits{}, []string{`entry "d/up"`, "outside the directory"}},
	{"write through a link", []tarEntry{dirEntry("real"), link("a", "real"), reg("a/passwd", "evil")}, Limits{}, []string{`entry "a/passwd"`, "through the symbolic link a"}},
	{"write through an absolute link", []tarEntry{link("a", "/etc"), reg("a/passwd", "evil")}, Limits{}, []string{`entry "a"`, "absolute path"}},
	{"write through a file", []tarEntry{reg("f", "x"), reg("f/x", "y")}, Limits{}, []string{`entry "f/x"`, "through the file f"}},
	{"link out through a link", []tarEntry{dirEntry("sub"), link("sub/top", ".."), link("escape", "sub/top/..")}, Limits{}, []string{`entry "escape"`, "leads outside the directory"}},
	{"link out through a link to its directory", []tarEntry{link("dot", "."), link("escape", "dot/..")}, Limits{}, []string{`entry "escape"`, "leads outside the directory"}},
	{"link through a missing name then up", []tarEntry{link("x", "missing/../a")}, Limits{}, []string{`entry "x"`, "climbs out of missing, not in the bundle"}},
	{"link through a file", []tarEntry{reg("f", "x"), link("x", "f/y")}, Limits{}, []string{`entry "x"`, "goes through the file f"}},
	{"link loop", []tarEntry{link("a", "b"), link("b", "a/x")}, Limits{}, []string{"loops"}},
	{"hard link", []tarEntry{reg("a", "x"), typed(tar.TypeLink, "h", "a")}, Limits{}, []string{`entry "h"`, "hard link"}},
	{"hard link out", []tarEntry{typed(tar.TypeLink, "h", "/etc/shadow")}, Limits{}, []string{`entry "h"`, "hard link"}},
	{"char device", []tarEntry{typed(tar.TypeChar, "null", "")}, Limits{}, []string{`entry "null"`, "device"}},
	{"block device", []tarEntry{typed(tar.TypeBlock, "sda", "")}, Limits{}, []string{`entry "sda"`, "device"}},
	{"fifo", []tarEntry{typed(tar.TypeFifo, "pipe", "")}, Limits{}, []string{`entry "pipe"`, "FIFO"}},
	{"duplicate file", []tarEntry{reg("a", "x"), reg("a", "y")}, Limits{}, []string{`entry "a"`, "second entry"}},
	{"duplicate dir", []tarEntry{dirEntry("d"), dirEntry("d")}, Limits{}, []string{`entry "d"`, "second entry"}},
	{"file then dir", []tarEntry{reg("a", "x"), dirEntry("a")}, Limits{}, []string{`entry "a"`, "second entry"}},
	{"dir then link", []tarEntry{dirEntry("a"), link("a", ".")}, Limits{}, []string{`entry "a"`, "second entry"}},
	{"too many entries", []tarEntry{reg("a", ""), reg("b", ""), reg("c/d", "")}, Limits{MaxEntries: 3}, []string{`entry "c/d"`, "limit of 3 files"}},
	{"file too large", []tarEntry{reg("big", strings.Repeat("x", 2000))}, Limits{MaxFileBytes: 1000}, []string{`entry "big"`, "past the limit of 1000 bytes for one file"}},
	{"too many bytes", []tarEntry{reg("a", strings.Repeat("x", 600)), reg("b", strings.Repeat("x", 600))}, Limits{MaxBytes: 1000}, []string{`entry "b"`, "limit of 1000 bytes in all"}},
	{"global header", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}}}}, Limits{}, []string{"tar type"}},
}

func TestExtractRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range hostile {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base, dest := extractBase(t)
			err := Extract(bytes.NewReader(archive(t, c.entries...)), dest, c.limits)
			t.Log(err)
			if !contains(err, c.want...) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
			assertUntouched(t, base, false)
		})
	}
}

// extractBase makes a directory base holding outside/keep and p/, for an
// extraction to dest, base/p/dest, to be checked by assertUntouched.
func extractBase(t testing.TB) (base, dest string) {
	t.Helper()
	base = tempDir(t)
	writeFiles(t, base, map[string]string{"outside/keep": "keep"})
	if err := os.Mkdir(filepath.Join(base, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	return base, filepath.Join(base, "p", "dest")
}

// assertUntouched checks that an extraction under base (to base/p/dest)
// wrote nothing but dest, and dest only when extracted is true.
func assertUntouched(t testing.TB, base string, extracted bool) {
	t.Helper()
	want := []string{}
	if extracted {
		want = []string{"dest"}
	}
	if got := listDir(t, filepath.Join(base, "p")); !slices.Equal(got, want) {
		t.Errorf("beside dest: %q, want %q", got, want)
	}
	if got := listDir(t, base); !slices.Equal(got, []string{"outside", "p"}) {
		t.Errorf("in the parent of dest's directory: %q", got)
	}
	if got := readTree(t, filepath.Join(base, "outside")); len(got) != 1 || got["keep"] != "keep" {
		t.Errorf("outside: %q", got)
	}
}

// bomb streams a tar.gz of files of zeros, made as it is read: 32 MiB in
// all, in files of each bytes, which compresses to some 40 KiB. made tells
// how many bytes of zeros were compressed before the reader stopped.
func bomb(t *testing.T, each int64) (r io.Reader, made func() int64) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	var n atomic.Int64
	go func() {
		w, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		tw := tar.NewWriter(w)
		var err error
		for i := range (32 << 20) / each {
			if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprint(i), Size: each, Mode: 0o644}); err != nil {
				break
			}
			var m int64
			m, err = io.CopyN(tw, zeros{}, each)
			n.Add(m)
			if err != nil {
				break
			}
		}
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, n.Load
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A small gzip that expands past the limits is stopped early: the reader
// inflates a fraction of it and writes nothing.
func TestExtractZipBomb(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		each   int64
		limits Limits
		want   string
	}{
		// Within the size limits, stopped by the ratio.
		{"ratio", 32 << 20, Limits{}, "expands over"},
		// A size past the limit is refused at the header.
		{"size", 32 << 20, Limits{MaxBytes: 1 << 20}, "limit of 1 MiB in all"},
		// Many files of zeros, each within the limits.
		{"entries", 1 << 20, Limits{}, "expands over"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base, dest := extractBase(t)
			r, made := bomb(t, c.each)
			err := Extract(r, dest, c.limits)
			if !contains(err, c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if n := made(); n > 4<<20 {
				t.Errorf("%d bytes of the 32 MiB were inflated before stopping", n)
			}
			assertUntouched(t, base, false)
		})
	}
}

func TestExtractDamaged(t *testing.T) {
	t.Parallel()
	good := archive(t, reg("a", strings.Repeat("abc", 10_000)), reg("b", "b"))
	trailing := gz(t, append(tarball(t, reg("a", "x")), make([]byte, maxTrailer+512)...))
	badSum := bytes.Clone(good)
	badSum[len(badSum)-6] ^= 0xff // the CRC-32 of the gzip trailer
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not gzip", []byte("PK\x03\x04 a zip file"), "not a tar.gz bundle"},
		{"truncated", good[:len(good)/2], "unexpected EOF"},
		{"trailing data", trailing, "data past the end of the archive"},
		{"checksum", badSum, "checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base, dest := extractBase(t)
			err := Extract(bytes.NewReader(c.data), dest, Limits{})
			if !contains(err, c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			assertUntouched(t, base, false)
		})
	}
}

// Archives Create would not make but that are safe are taken: entries
// without their directories, a directory after its implicit creation, and
// links that dangle inside.
func TestExtractTolerates(t *testing.T) {
	t.Parallel()
	data := archive(t,
		reg("a/b/c.txt", "c"),
		dirEntry("a"),
		link("a/l", "b/c.txt"),
		link("dangling", "not/there"),
		link("up", "a/b/.."),
		tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: "run", Size: 2, Mode: 0o700}, "hi"},
	)
	base, dest := extractBase(t)
	if err := Extract(bytes.NewReader(data), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "dir", "a/b": "dir", "a/b/c.txt": "c", "a/l": "-> b/c.txt", "dangling": "-> not/there", "up": "-> a/b/..", "run": "exec:hi"}
	if got := readTree(t, dest); !maps.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	assertUntouched(t, base, true)
}

// Of extractions racing to one destination, one wins and the others fail
// with fs.ErrExist, leaving nothing behind; none leaves a partial tree.
func TestExtractAtomic(t *testing.T) {
	t.Parallel()
	var entries []tarEntry
	for i := range 200 {
		entries = append(entries, reg(filepath.Join("d", strings.Repeat("f", 1+i%50), strings.Repeat("g", 1+i/50)), strings.Repeat("x", i)))
	}
	data := archive(t, entries...)
	base, dest := extractBase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Extract(bytes.NewReader(data), dest, Limits{}) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("a losing extraction: %v, want fs.ErrExist", err)
		}
	}
	if won != 1 {
		t.Errorf("%d extractions won, want 1: %v", won, errs)
	}
	if got := len(readTree(t, dest)); got != 200+1+50 {
		t.Errorf("dest holds %d entries, want 251", got)
	}
	assertUntouched(t, base, true)
	if err := Extract(bytes.NewReader(data), dest, Limits{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("extracting over a tree: %v, want fs.ErrExist", err)
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"a\x00b":                   "NUL",
		"":                         "empty",
		strings.Repeat("a/", 2048): "longer than",
		"a/b/":                     "not clean",
		"a/./b":                    "not clean",
		"a/b/..":                   `".."`,
		"a/b/c.txt":                "",
		"..a/b..c/...":             "",
	} {
		err := checkName(name)
		if (want == "") != (err == nil) || (want != "" && !contains(err, want)) {
			t.Errorf("checkName(%.20q) = %v, want %q", name, err, want)
		}
	}
}
