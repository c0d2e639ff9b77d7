package bundle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchBundle is a bundle of 1 MiB: 64 files of 16 KiB that do not
// compress, so the archive is 1 MiB too.
func benchBundle(b *testing.B) *Bundle {
	dir := b.TempDir()
	rng := rand.NewChaCha8([32]byte{1})
	for i := range 64 {
		data := make([]byte, 16<<10)
		rng.Read(data)
		name := filepath.Join(dir, fmt.Sprintf("d%d", i%8), fmt.Sprintf("f%d.bin", i))
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bun, err := Create(dir, CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return bun
}

// BenchmarkColdStart is a worker's first Get of a revision: fetch (from
// memory), verify and extract a 1 MiB bundle. Target: under 150 ms.
func BenchmarkColdStart(b *testing.B) {
	bun := benchBundle(b)
	f := &fetcher{data: bun.Data}
	b.SetBytes(int64(len(bun.Data)))
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		c := openCache(b, dir, CacheOptions{})
		b.StartTimer()
		_, cold, release, err := c.Get(context.Background(), bun.Hash, f.fetch)
		if err != nil || !cold {
			b.Fatalf("cold %v, %v", cold, err)
		}
		release()
		b.StopTimer()
		RemoveTree(dir)
		b.StartTimer()
	}
}

// BenchmarkWarmGet is every later Get of the revision. Target: under 5 ms.
func BenchmarkWarmGet(b *testing.B) {
	bun := benchBundle(b)
	f := &fetcher{data: bun.Data}
	c := openCache(b, tempDir(b), CacheOptions{})
	_, _, release := get(b, c, bun, f)
	release()
	for b.Loop() {
		_, cold, release, err := c.Get(context.Background(), bun.Hash, f.fetch)
		if err != nil || cold {
			b.Fatalf("cold %v, %v", cold, err)
		}
		release()
	}
}
