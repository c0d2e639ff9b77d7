// Package artifactstest is the conformance suite of artifact stores: the
// same tests run against every backend (local, postgres, s3), so that the
// engine may rely on the contract of artifacts.Store and not on one of them.
package artifactstest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/routines-dev/routines/internal/artifacts"
)

// Harness is a backend under test.
type Harness struct {
	// Store is a new, empty store.
	Store artifacts.Store
	// Corrupt changes the stored bytes of an artifact behind the store's
	// back, keeping its recorded size and checksum, as a damaged disk or
	// bucket would.
	Corrupt func(t *testing.T, run, step, name string)
}

// Exercise runs the suite; open returns a harness for one test.
func Exercise(t *testing.T, open func(t *testing.T) *Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"PutGetList", testPutGetList},
		{"Replace", testReplace},
		{"NotFound", testNotFound},
		{"ChecksumMismatch", testChecksumMismatch},
		{"HostileNames", testHostileNames},
		{"SizeMismatch", testSizeMismatch},
		{"Delete", testDelete},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

const run = "01RUNAAAAAAAAAAAAAAAAAAAAA"

// put stores data and fails the test on an error.
func put(t *testing.T, s artifacts.Store, run, step, name string, data []byte) artifacts.Info {
	t.Helper()
	info, err := s.Put(t.Context(), run, step, name, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put %s/%s: %v", step, name, err)
	}
	want := artifacts.Info{Step: step, Name: name, Size: int64(len(data)), Sum: sum(data)}
	if info != want {
		t.Fatalf("Put %s/%s returned %+v, want %+v", step, name, info, want)
	}
	return info
}

// get reads an artifact whole; the error is that of its opening or of
// its reading.
func get(t *testing.T, s artifacts.Store, run, step, name string) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(t.Context(), run, step, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// random returns n bytes that no store could compress away.
func random(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func list(t *testing.T, s artifacts.Store, run string) string {
	t.Helper()
	infos, err := s.List(t.Context(), run)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, fmt.Sprintf("%s/%s %d %s", i.Step, i.Name, i.Size, i.Sum[:8]))
	}
	return strings.Join(out, "\n")
}

func testPutGetList(t *testing.T, h *Harness) {
	s := h.Store
	files := []struct {
		step, name string
		data       []byte
	}{
		{"build", "report.txt", []byte("all green\n")},
		{"build", "out/deep/data.bin", random(3<<20 + 17)},
		{"build", "empty", nil},
		{"build", "a.txt", []byte("a")},
		{"build", "a/b", []byte("b")},
		{"fetch", "mail.json", []byte(`{"subject":"hi"}`)},
	}
	var want []string
	for _, f := range files {
		i := put(t, s, run, f.step, f.name, f.data)
		want = append(want, fmt.Sprintf("%s/%s %d %s", i.Step, i.Name, i.Size, i.Sum[:8]))
	}
	for _, f := range files {
		got, err := get(t, s, run, f.step, f.name)
		if err != nil {
			t.Fatalf("Get %s/%s: %v", f.step, f.name, err)
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("Get %s/%s: %d bytes back, put %d (or different ones)", f.step, f.name, len(got), len(f.data))
		}
	}
	// By step, then name in byte order: "a.txt" before "a/b".
	order := []int{3, 4, 2, 1, 0, 5}
	var sorted []string
	for _, i := range order {
		sorted = append(sorted, want[i])
	}
	if got := list(t, s, run); got != strings.Join(sorted, "\n") {
		t.Fatalf("List:\n%s\nwant:\n%s", got, strings.Join(sorted, "\n"))
	}
	if got := list(t, s, "01OTHERRUNAAAAAAAAAAAAAAAA"); got != "" {
		t.Fatalf("List of another run: %s", got)
	}
	if _, err := get(t, s, "01OTHERRUNAAAAAAAAAAAAAAAA", "build", "report.txt"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Fatalf("Get in another run: %v, want ErrNotFound", err)
	}
}

func testReplace(t *testing.T, h *Harness) {
	put(t, h.Store, run, "s", "f.txt", []byte("first, longer version"))
	put(t, h.Store, run, "s", "f.txt", []byte("second"))
	got, err := get(t, h.Store, run, "s", "f.txt")
	if err != nil || string(got) != "second" {
		t.Fatalf("Get after a second Put: %q, %v", got, err)
	}
	if got, want := list(t, h.Store, run), "s/f.txt 6 "+sum([]byte("second"))[:8]; got != want {
		t.Fatalf("List: %s, want %s", got, want)
	}
}

func testNotFound(t *testing.T, h *Harness) {
	put(t, h.Store, run, "s", "here.txt", []byte("x"))
	for _, name := range []string{"missing.txt", "here.txt/x", "here"} {
		if _, err := get(t, h.Store, run, "s", name); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("Get %s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := get(t, h.Store, run, "other", "here.txt"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("Get in another step: %v, want ErrNotFound", err)
	}
}

func testChecksumMismatch(t *testing.T, h *Harness) {
	data := random(64 << 10)
	put(t, h.Store, run, "s", "data.bin", data)
	h.Corrupt(t, run, "s", "data.bin")
	got, err := get(t, h.Store, run, "s", "data.bin")
	if !errors.Is(err, artifacts.ErrChecksum) {
		t.Fatalf("Get of damaged bytes: %d bytes, err %v; want ErrChecksum", len(got), err)
	}
	if !strings.Contains(err.Error(), "s/data.bin") {
		t.Errorf("the error does not name the artifact: %v", err)
	}
}

func testHostileNames(t *testing.T, h *Harness) {
	ctx := t.Context()
	bad := []struct{ run, step, name string }{
		{run, "s", "../escape"},
		{run, "s", "a/../../escape"},
		{run, "s", "/etc/passwd"},
		{run, "s", ""},
		{run, "s", "."},
		{run, "s", "a//b"},
		{run, "s", "a/./b"},
		{run, "s", "dir/"},
		{run, "s", `a\..\b`},
		{run, "s", "nul\x00byte"},
		{run, "..", "x"},
		{run, ".sha256", "x"},
		{run, "a/b", "x"},
		{run, "", "x"},
		{"../" + run, "s", "x"},
		{"", "s", "x"},
		{"a/b", "s", "x"},
	}
	for _, k := range bad {
		if _, err := h.Store.Put(ctx, k.run, k.step, k.name, strings.NewReader("x"), 1); !errors.Is(err, artifacts.ErrName) {
			t.Errorf("Put %q %q %q: %v, want ErrName", k.run, k.step, k.name, err)
		}
		if _, err := h.Store.Get(ctx, k.run, k.step, k.name); !errors.Is(err, artifacts.ErrName) {
			t.Errorf("Get %q %q %q: %v, want ErrName", k.run, k.step, k.name, err)
		}
	}
	for _, r := range []string{"", "..", "a/b", "../x"} {
		if _, err := h.Store.List(ctx, r); !errors.Is(err, artifacts.ErrName) {
			t.Errorf("List %q: %v, want ErrName", r, err)
		}
		if err := h.Store.Delete(ctx, r); !errors.Is(err, artifacts.ErrName) {
			t.Errorf("Delete %q: %v, want ErrName", r, err)
		}
	}
}

func testSizeMismatch(t *testing.T, h *Harness) {
	ctx := t.Context()
	for _, size := range []int64{3, 5} {
		if _, err := h.Store.Put(ctx, run, "s", "f", strings.NewReader("four"), size); err == nil {
			t.Errorf("Put of 4 bytes announced as %d: no error", size)
		}
	}
	if _, err := get(t, h.Store, run, "s", "f"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("Get after failed puts: %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, h *Harness) {
	const other = "01OTHERRUNAAAAAAAAAAAAAAAA"
	put(t, h.Store, run, "a", "x", []byte("1"))
	put(t, h.Store, run, "b", "deep/y", []byte("2"))
	put(t, h.Store, other, "a", "x", []byte("3"))
	if err := h.Store.Delete(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if got := list(t, h.Store, run); got != "" {
		t.Fatalf("List after Delete: %s", got)
	}
	if _, err := get(t, h.Store, run, "a", "x"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if got, err := get(t, h.Store, other, "a", "x"); err != nil || string(got) != "3" {
		t.Fatalf("another run's artifact after Delete: %q, %v", got, err)
	}
	if err := h.Store.Delete(t.Context(), "01NOARTIFACTSAAAAAAAAAAAAA"); err != nil {
		t.Fatalf("Delete of a run without artifacts: %v", err)
	}
}

// testConcurrent puts and reads the artifacts of parallel steps at once,
// as the engine does for steps that run in parallel.
func testConcurrent(t *testing.T, h *Harness) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			step, data := fmt.Sprintf("step-%d", i), random(1000+i)
			for j := range 2 {
				name := fmt.Sprintf("f%d", j)
				if _, err := h.Store.Put(t.Context(), run, step, name, bytes.NewReader(data), int64(len(data))); err != nil {
					errs <- err
					return
				}
				if got, err := get(t, h.Store, run, step, name); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s/%s: %d bytes, %v", step, name, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	infos, err := h.Store.List(t.Context(), run)
	if err != nil || len(infos) != 16 {
		t.Fatalf("List: %d artifacts, %v; want 16", len(infos), err)
	}
}
