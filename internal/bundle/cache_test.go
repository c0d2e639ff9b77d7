package bundle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fetcher serves one archive from memory and counts its fetches; with a
// gate, each fetch waits for the gate to close.
type fetcher struct {
	data  []byte
	calls atomic.Int32
	gate  chan struct{}
}

func (f *fetcher) fetch(ctx context.Context) (io.ReadCloser, error) {
	f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// makeBundle bundles a routine directory of one file, name, of size bytes.
func makeBundle(t testing.TB, name string, size int) *Bundle {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"routine.yaml": "name: " + name + "\n", "data.bin": strings.Repeat(name[:1], size)})
	b, err := Create(dir, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openCache(t testing.TB, dir string, opts CacheOptions) *Cache {
	t.Helper()
	c, err := OpenCache(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get is Cache.Get that must succeed.
func get(t testing.TB, c *Cache, b *Bundle, f *fetcher) (dir string, cold bool, release func()) {
	t.Helper()
	dir, cold, release, err := c.Get(context.Background(), b.Hash, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	return dir, cold, release
}

func TestCacheColdThenWarm(t *testing.T) {
	t.Parallel()
	cacheDir := tempDir(t)
	c := openCache(t, cacheDir, CacheOptions{})
	b := makeBundle(t, "hello", 100)
	f := &fetcher{data: b.Data}
	before := time.Now().Add(-time.Second)
	dir, cold, release := get(t, c, b, f)
	if !cold || f.calls.Load() != 1 || dir != filepath.Join(cacheDir, b.Hash) {
		t.Fatalf("first Get: cold %v, %d fetches, dir %s", cold, f.calls.Load(), dir)
	}
	if got := readTree(t, dir); got["routine.yaml"] != "name: hello\n" || len(got["data.bin"]) != 100 {
		t.Errorf("extracted: %q", got)
	}
	if info, err := os.Stat(dir); err != nil || info.ModTime().Before(before) {
		t.Errorf("the bundle's time is not its last use: %v, %v", info.ModTime(), err)
	}
	release()
	release() // a second release does nothing
	dir2, cold, release := get(t, c, b, f)
	defer release()
	if cold || dir2 != dir || f.calls.Load() != 1 {
		t.Errorf("second Get: cold %v, dir %s, %d fetches", cold, dir2, f.calls.Load())
	}
	// A worker restarted finds it warm.
	_, cold, release2 := get(t, openCache(t, cacheDir, CacheOptions{}), b, f)
	release2()
	if cold || f.calls.Load() != 1 {
		t.Errorf("after a restart: cold %v, %d fetches", cold, f.calls.Load())
	}
}

func TestCacheRefuses(t *testing.T) {
	t.Parallel()
	good := makeBundle(t, "good", 10)
	other := makeBundle(t, "other", 10)
	bomb := archive(t, reg("../../escape", "x"))
	bombSum := sha256.Sum256(bomb)
	failure := errors.New("connection refused")
	cases := []struct {
		name  string
		hash  string
		fetch func(context.Context) (io.ReadCloser, error)
		want  []string
	}{
		{"another bundle's archive", good.Hash, (&fetcher{data: other.Data}).fetch, []string{"fetch bundle " + good.ID(), "sha256 " + other.Hash, "nothing was cached"}},
		{"a hostile archive", hex.EncodeToString(bombSum[:]), (&fetcher{data: bomb}).fetch, []string{`entry "../../escape"`}},
		{"a failed fetch", good.Hash, func(context.Context) (io.ReadCloser, error) { return nil, failure }, []string{"fetch bundle " + good.ID(), "connection refused"}},
		{"a bad hash", "../../etc", nil, []string{"64 hex digits"}},
		{"an upper-case hash", strings.ToUpper(good.Hash), nil, []string{"lowercase"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cacheDir := tempDir(t)
			cache := openCache(t, cacheDir, CacheOptions{})
			_, _, _, err := cache.Get(context.Background(), c.hash, c.fetch)
			if !contains(err, c.want...) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			for _, name := range listDir(t, cacheDir) {
				if !strings.HasSuffix(name, lockExt) {
					t.Errorf("left in the cache: %s", name)
				}
			}
			// A good fetch of the same bundle then works.
			if c.hash == good.Hash {
				if _, cold, release := get(t, cache, good, &fetcher{data: good.Data}); !cold {
					t.Error("not fetched again")
				} else {
					release()
				}
			}
		})
	}
}

// Concurrent Gets of one bundle fetch it once.
func TestCacheConcurrentGets(t *testing.T) {
	t.Parallel()
	c := openCache(t, tempDir(t), CacheOptions{})
	b := makeBundle(t, "shared", 1000)
	f := &fetcher{data: b.Data, gate: make(chan struct{})}
	const n = 8
	var started, done sync.WaitGroup
	dirs := make([]string, n)
	for i := range n {
		started.Add(1)
		done.Go(func() {
			started.Done()
			dir, _, release, err := c.Get(context.Background(), b.Hash, f.fetch)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			dirs[i] = dir
			if got := readTree(t, dir); got["routine.yaml"] != "name: shared\n" {
				t.Errorf("Get %d: %q", i, got)
			}
		})
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let them reach the fetch under way (it cannot pass otherwise)
	close(f.gate)
	done.Wait()
	if f.calls.Load() != 1 {
		t.Errorf("%d fetches, want 1", f.calls.Load())
	}
	if dirs[0] == "" || slices.ContainsFunc(dirs, func(d string) bool { return d != dirs[0] }) {
		t.Errorf("dirs %q", dirs)
	}
}

// A Get that gives up leaves the fetch to the others sharing it, and one
// whose shared fetch was given up fetches again.
func TestCacheGetGivesUp(t *testing.T) {
	t.Parallel()
	c := openCache(t, tempDir(t), CacheOptions{})
	b := makeBundle(t, "slow", 10)
	f := &fetcher{data: b.Data, gate: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() {
		_, _, _, err := c.Get(ctx, b.Hash, f.fetch)
		first <- err
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error)
	go func() {
		_, _, release, err := c.Get(context.Background(), b.Hash, f.fetch)
		if err == nil {
			release()
		}
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // the second joins the first's fetch
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the Get that gave up: %v", err)
	}
	close(f.gate)
	if err := <-second; err != nil {
		t.Errorf("the Get that did not give up: %v", err)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	cacheDir := tempDir(t)
	bundles := map[string]*Bundle{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		bundles[name] = makeBundle(t, name, 10_000)
	}
	// Two bundles fit (each holds 10,000 bytes and its routine.yaml).
	c := openCache(t, cacheDir, CacheOptions{MaxBytes: 25_000})
	use := func(name string) func() {
		_, _, release := get(t, c, bundles[name], &fetcher{data: bundles[name].Data})
		return release
	}
	setUsed := func(name string, at time.Time) {
		if err := os.Chtimes(filepath.Join(cacheDir, bundles[name].Hash), at, at); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(want ...string) {
		t.Helper()
		var got []string
		for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
			if isDir(filepath.Join(cacheDir, bundles[name].Hash)) {
				got = append(got, name)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("kept %q, want %q", got, want)
		}
	}
	day := time.Now().Add(-24 * time.Hour)
	use("a")()
	use("b")()
	setUsed("a", day.Add(2*time.Hour)) // a used after b
	setUsed("b", day.Add(time.Hour))
	use("c")()
	kept("a", "c")

	// d is in use: never evicted, however old.
	releaseD := use("d")
	kept("c", "d")
	setUsed("d", day)
	use("e")()
	kept("d", "e")
	releaseD()
	use("f")()
	kept("e", "f")
	if got := treeSize(cacheDir); got > 25_000 {
		t.Errorf("the cache holds %d bytes, past its bound", got)
	}
}

// Two caches on one directory (two workers on one machine) share its
// bundles: neither evicts what the other uses, and both may extract one
// bundle at once.
func TestCacheSharedDirectory(t *testing.T) {
	t.Parallel()
	cacheDir := tempDir(t)
	one := openCache(t, cacheDir, CacheOptions{MaxBytes: 15_000})
	two := openCache(t, cacheDir, CacheOptions{MaxBytes: 15_000})
	a, b, c := makeBundle(t, "a", 10_000), makeBundle(t, "b", 10_000), makeBundle(t, "c", 10_000)
	dirA, _, releaseA := get(t, one, a, &fetcher{data: a.Data})
	_, _, releaseB := get(t, two, b, &fetcher{data: b.Data})
	if !isDir(dirA) {
		t.Fatal("the second cache evicted a bundle the first uses")
	}
	releaseA()
	releaseB()

	fetches := &fetcher{data: c.Data}
	var wg sync.WaitGroup
	dirs := make([]string, 6)
	for i := range dirs {
		cache := []*Cache{one, two}[i%2]
		wg.Go(func() {
			dir, _, release, err := cache.Get(context.Background(), c.Hash, fetches.fetch)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			dirs[i] = dir
			if got := readTree(t, dir); got["routine.yaml"] != "name: c\n" {
				t.Errorf("%q", got)
			}
		})
	}
	wg.Wait()
	if n := fetches.calls.Load(); n < 1 || n > 2 {
		t.Errorf("%d fetches by two caches, want one or two", n)
	}
	for _, name := range listDir(t, cacheDir) {
		if strings.HasPrefix(name, ".") {
			t.Errorf("left in the cache: %s", name)
		}
	}
}

// The lock that keeps a bundle in use is the kernel's: another process's
// eviction leaves it while the process lives, and takes it once the
// process is killed.
func TestCacheAcrossProcesses(t *testing.T) {
	t.Parallel()
	cacheDir := tempDir(t)
	c := openCache(t, cacheDir, CacheOptions{MaxBytes: 1})
	b := makeBundle(t, "held", 1000)
	_, _, release := get(t, c, b, &fetcher{data: b.Data})
	release() // still there: eviction runs on a cold Get and on open

	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheHelperProcess$")
	cmd.Env = append(os.Environ(), "BUNDLE_HELPER_CACHE="+cacheDir, "BUNDLE_HELPER_HASH="+b.Hash)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	c.evict()
	if !isDir(filepath.Join(cacheDir, b.Hash)) {
		t.Error("evicted a bundle another process uses")
	}
	cmd.Process.Kill()
	cmd.Wait()
	c.evict()
	if isDir(filepath.Join(cacheDir, b.Hash)) {
		t.Error("a bundle whose user was killed is never evicted")
	}
}

// TestCacheHelperProcess is the other process of TestCacheAcrossProcesses:
// it holds a bundle until it is killed.
func TestCacheHelperProcess(t *testing.T) {
	dir, hash := os.Getenv("BUNDLE_HELPER_CACHE"), os.Getenv("BUNDLE_HELPER_HASH")
	if dir == "" {
		t.Skip("run by TestCacheAcrossProcesses")
	}
	c := openCache(t, dir, CacheOptions{})
	_, cold, _, err := c.Get(context.Background(), hash, nil)
	if err != nil || cold {
		t.Fatalf("helper: cold %v, %v", cold, err)
	}
	fmt.Println("held")
	time.Sleep(time.Minute) // till killed
}

func TestOpenCacheCleans(t *testing.T) {
	t.Parallel()
	cacheDir := tempDir(t)
	b := makeBundle(t, "kept", 10)
	c := openCache(t, cacheDir, CacheOptions{})
	_, _, release := get(t, c, b, &fetcher{data: b.Data})
	release()
	orphan := strings.Repeat("0", 64) + lockExt
	writeFiles(t, cacheDir, map[string]string{
		".crashed.tmp-1/sub/file": "left by a crash",
		".recent.tmp-2/file":      "under way",
		orphan:                    "",
	})
	old := time.Now().Add(-2 * staleAfter)
	os.Chmod(filepath.Join(cacheDir, ".crashed.tmp-1/sub"), 0o555)
	os.Chtimes(filepath.Join(cacheDir, ".crashed.tmp-1"), old, old)
	openCache(t, cacheDir, CacheOptions{})
	want := []string{".recent.tmp-2", b.Hash, b.Hash + lockExt}
	if got := listDir(t, cacheDir); !slices.Equal(got, want) {
		t.Errorf("after open: %q, want %q", got, want)
	}
}
