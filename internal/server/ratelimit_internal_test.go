package server

import (
	"strconv"
	"testing"
	"time"
)

// The buckets stay bounded: past maxBuckets newcomers share one bucket
// (so a flood of distinct keys is limited as one caller), and buckets
// full again are dropped, at the bound and every sweepEvery.
func TestBucketsBounded(t *testing.T) {
	t.Parallel()
	b := newBuckets(Rate{PerSecond: 1, Burst: 1})
	now := time.Now()
	for i := range maxBuckets {
		if d := b.take("k"+strconv.Itoa(i), now); d != 0 {
			t.Fatalf("key %d: wait %s", i, d)
		}
	}
	if b.take("new1", now) != 0 || b.take("new2", now) == 0 {
		t.Fatal("past the bound, newcomers should share one bucket")
	}
	if n := kept(b); n != maxBuckets {
		t.Fatalf("%d buckets, want %d", n, maxBuckets)
	}
	// A second later every bucket is full: the next newcomer sweeps them.
	if d := b.take("new3", now.Add(time.Second)); d != 0 {
		t.Fatalf("after the refill: wait %s", d)
	}
	if n := kept(b); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}

	// Below the bound, idle buckets go at the next sweep.
	b = newBuckets(Rate{PerSecond: 1, Burst: 1})
	b.take("a", now)
	b.take("b", now.Add(sweepEvery/2))
	b.take("c", now.Add(sweepEvery+time.Second))
	if n := kept(b); n != 1 {
		t.Fatalf("%d buckets after a minute, want 1 (the newcomer's)", n)
	}
	if newBuckets(Rate{}) != nil || (*buckets)(nil).take("x", now) != 0 {
		t.Fatal("the zero rate should limit nothing")
	}
}

// kept is the number of buckets b keeps.
func kept(b *buckets) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
