package bundle

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheBytes bounds a Cache whose options give no bound.
const DefaultCacheBytes = 1 << 30

// staleAfter is how old a temporary tree (an extraction or a removal under
// way) must be for OpenCache to take it for a crashed process's and remove
// it.
const staleAfter = time.Hour

// lockExt ends the name of a bundle's lock file, beside its tree.
const lockExt = ".lock"

// Cache keeps extracted bundles in a directory, by hash: <dir>/<hash> is a
// bundle's read-only tree. Several processes may share the directory (two
// workers on one machine): trees appear by atomic rename, so a process
// finds one whole or not at all, and one process extracting a bundle the
// other has just extracted takes the other's.
//
// A bundle in use is never evicted: each Get holds a shared lock on
// <dir>/<hash>.lock (flock; LockFileEx on Windows) until it is released,
// and eviction takes the lock exclusively, without waiting, or leaves the
// bundle be. The lock is the kernel's, so a crashed user frees its bundles.
// The cache evicts the least recently used bundles (by the time of their
// directory, set at each Get, which other processes see too) once their
// files pass its bound; bundles in use may keep it above the bound.
//
// Lock order: evictMu, then mu.
type Cache struct {
	dir    string
	max    int64
	limits Limits
	log    *slog.Logger
	flight singleflight.Group

	evictMu sync.Mutex // one eviction pass at a time
	mu      sync.Mutex
	sizes   map[string]int64 // the bytes of the files of the bundles seen, by hash
}

// CacheOptions tune a Cache.
type CacheOptions struct {
	// MaxBytes bounds the bytes of the files of the bundles kept; zero
	// takes DefaultCacheBytes.
	MaxBytes int64
	// Limits bound each bundle fetched, as Extract takes them.
	Limits Limits
	// Logger gets what eviction could not do; nil discards it.
	Logger *slog.Logger
}

// OpenCache opens the cache in dir, creating it when missing. It removes
// what crashed processes left there and evicts down to the bound.
func OpenCache(dir string, opts CacheOptions) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open bundle cache: %w", err)
	}
	c := &Cache{
		dir:    dir,
		max:    cmp.Or(max(opts.MaxBytes, 0), DefaultCacheBytes),
		limits: opts.Limits.withDefaults(),
		log:    opts.Logger,
		sizes:  map[string]int64{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := c.clean(); err != nil {
		return nil, fmt.Errorf("open bundle cache: %w", err)
	}
	c.evict()
	return c, nil
}

// Get returns the directory of the bundle hash, extracted, and a release to
// call once done with it: until then it is not evicted. The first Get of a
// hash (cold) calls fetch for the archive, checks that its sha256 is hash
// (else nothing is cached and Get fails) and extracts it; concurrent Gets
// of one hash in this process share one fetch. Later Gets find it (warm).
// fetch should bound its own time: a Get that gives up leaves it to the
// Gets it shares with, and a Get whose fetch was given up fetches again.
func (c *Cache) Get(ctx context.Context, hash string, fetch func(context.Context) (io.ReadCloser, error)) (dir string, cold bool, release func(), err error) {
	if err := checkHash(hash); err != nil {
		return "", false, nil, err
	}
	lock, err := c.hold(ctx, hash)
	if err != nil {
		return "", false, nil, fmt.Errorf("bundle %s: %w", Short(hash), err)
	}
	release = sync.OnceFunc(func() { lock.Close() })
	dir = filepath.Join(c.dir, hash)
	if !isDir(dir) {
		if cold, err = c.load(ctx, hash, fetch); err != nil {
			release()
			return "", false, nil, err
		}
	}
	now := time.Now()
	os.Chtimes(dir, now, now) // the last use, for eviction in any process
	return dir, cold, release, nil
}

// load fetches and extracts hash once for the concurrent Gets of this
// process.
func (c *Cache) load(ctx context.Context, hash string, fetch func(context.Context) (io.ReadCloser, error)) (bool, error) {
	for try := 0; ; try++ {
		ch := c.flight.DoChan(hash, func() (any, error) { return c.fill(ctx, hash, fetch) })
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case res := <-ch:
			gaveUp := errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, context.DeadlineExceeded)
			if gaveUp && res.Shared && ctx.Err() == nil && try < 2 {
				continue // the Get whose fetch it was gave up; this one has not
			}
			if res.Err != nil {
				return false, res.Err
			}
			return res.Val.(bool), nil
		}
	}
}

// fill fetches, verifies and extracts hash, unless it is there already;
// cold tells whether it fetched.
func (c *Cache) fill(ctx context.Context, hash string, fetch func(context.Context) (io.ReadCloser, error)) (cold bool, err error) {
	dir := filepath.Join(c.dir, hash)
	if isDir(dir) {
		return false, nil // a Get just before this one, here or in another process
	}
	data, err := fetchArchive(ctx, fetch, c.limits.maxArchiveBytes())
	if err != nil {
		return false, fmt.Errorf("fetch bundle %s: %w", Short(hash), err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hash {
		return false, fmt.Errorf("fetch bundle %s: the archive fetched has the sha256 %s, not the bundle's: nothing was cached (a damaged download, or a store that serves another bundle)", Short(hash), hex.EncodeToString(sum[:]))
	}
	n, err := extract(bytes.NewReader(data), dir, c.limits)
	switch {
	case errors.Is(err, fs.ErrExist) && isDir(dir):
		n = treeSize(dir) // another process extracted it first
	case err != nil:
		return false, fmt.Errorf("bundle %s: %w", Short(hash), err)
	}
	c.mu.Lock()
	c.sizes[hash] = n
	c.mu.Unlock()
	c.evict()
	return true, nil
}

// fetchArchive reads the whole archive that fetch gives, up to limit bytes.
func fetchArchive(ctx context.Context, fetch func(context.Context) (io.ReadCloser, error), limit int64) ([]byte, error) {
	rc, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("the archive passes %s, more than a bundle within the limits takes", size(limit))
	}
	return data, nil
}

// hold takes the shared lock that keeps hash from being evicted. While an
// eviction holds the lock exclusively, it waits for the eviction to end;
// a lock file that the eviction removed meanwhile is made anew.
func (c *Cache) hold(ctx context.Context, hash string) (*os.File, error) {
	path := filepath.Join(c.dir, hash+lockExt)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		held, err := tryLock(f, true)
		if err == nil && !held && sameFile(f, path) {
			return f, nil
		}
		f.Close()
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func isDir(path string) bool {
	info, err := os.Lstat(path)
	return err == nil && info.IsDir()
}

// treeSize is the bytes of the regular files of the tree dir.
func treeSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// evict removes the least recently used bundles not in use, in this
// process or another, until the rest fit the bound.
func (c *Cache) evict() {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	type kept struct {
		hash string
		used time.Time
		size int64
	}
	list, err := os.ReadDir(c.dir)
	if err != nil {
		c.log.Warn("list bundle cache", "dir", c.dir, "err", err)
		return
	}
	var all []kept
	var total int64
	c.mu.Lock()
	sizes := maps.Clone(c.sizes)
	c.mu.Unlock()
	seen := map[string]int64{}
	for _, e := range list {
		info, err := e.Info()
		if err != nil || !e.IsDir() || checkHash(e.Name()) != nil {
			continue
		}
		n, ok := sizes[e.Name()]
		if !ok {
			n = treeSize(filepath.Join(c.dir, e.Name())) // extracted by another process
		}
		seen[e.Name()] = n
		all = append(all, kept{e.Name(), info.ModTime(), n})
		total += n
	}
	slices.SortFunc(all, func(a, b kept) int { return cmp.Or(a.used.Compare(b.used), strings.Compare(a.hash, b.hash)) })
	for _, k := range all {
		if total <= c.max {
			break
		}
		if c.remove(k.hash) {
			total -= k.size
			delete(seen, k.hash)
		}
	}
	c.mu.Lock()
	for hash := range c.sizes {
		// Gone, unless a Get added it since the listing.
		if _, ok := seen[hash]; !ok && !isDir(filepath.Join(c.dir, hash)) {
			delete(c.sizes, hash)
		}
	}
	maps.Copy(c.sizes, seen)
	c.mu.Unlock()
}

// trashCount makes the names of trees being removed unique in a process.
var trashCount atomic.Int64

// remove evicts hash unless it is in use: it takes the lock exclusively,
// moves the tree aside (so no one finds it half removed), removes the lock
// file while still holding it, then the tree.
func (c *Cache) remove(hash string) bool {
	path := filepath.Join(c.dir, hash+lockExt)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		c.log.Warn("evict bundle", "hash", hash, "err", err)
		return false
	}
	defer f.Close() // after the removal of the file: a Get waits till then
	if held, err := tryLock(f, false); err != nil || held || !sameFile(f, path) {
		return false // in use
	}
	trash := filepath.Join(c.dir, fmt.Sprintf(".%s%s%d-%d", hash, tmpMark, os.Getpid(), trashCount.Add(1)))
	if err := os.Rename(filepath.Join(c.dir, hash), trash); err != nil {
		c.log.Warn("evict bundle", "hash", hash, "err", err)
		return false
	}
	os.Remove(path)
	if err := RemoveTree(trash); err != nil {
		c.log.Warn("evict bundle", "hash", hash, "err", err)
	}
	return true
}

// clean removes what crashed processes left: temporary trees older than
// staleAfter, and lock files of bundles that are not there and that no one
// holds.
func (c *Cache) clean() error {
	list, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, e := range list {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, tmpMark):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
				RemoveTree(filepath.Join(c.dir, name))
			}
		case strings.HasSuffix(name, lockExt) && checkHash(strings.TrimSuffix(name, lockExt)) == nil:
			if hash := strings.TrimSuffix(name, lockExt); !isDir(filepath.Join(c.dir, hash)) {
				c.removeLock(hash)
			}
		}
	}
	return nil
}

// removeLock removes the lock file of a bundle that is not there, unless
// someone holds it (a Get fetching it).
func (c *Cache) removeLock(hash string) {
	path := filepath.Join(c.dir, hash+lockExt)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if held, err := tryLock(f, false); err == nil && !held && sameFile(f, path) && !isDir(filepath.Join(c.dir, hash)) {
		os.Remove(path)
	}
}
