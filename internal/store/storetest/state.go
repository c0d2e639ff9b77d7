package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

func exerciseState(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.wantState(t, "r", "count", epoch, "", false)
		if existed := b.putState(t, "r", "count", "1", nil, epoch); existed {
			t.Error("StatePut of a new key: existed = true")
		}
		b.wantState(t, "r", "count", epoch, "1", true)
		// An empty value is a value, not a missing key.
		b.putState(t, "r", "empty", "", nil, epoch)
		b.wantState(t, "r", "empty", epoch, "", true)
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.putState(t, "r", "k", "first", ptr(at(time.Minute)), epoch)
		if existed := b.putState(t, "r", "k", "second", nil, at(time.Second)); !existed {
			t.Error("StatePut of an existing key: existed = false")
		}
		// The second put dropped the expiry of the first.
		b.wantState(t, "r", "k", at(time.Hour), "second", true)
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if existed := b.deleteState(t, "r", "k", epoch); existed {
			t.Error("StateDelete of a missing key: existed = true")
		}
		b.putState(t, "r", "k", "v", nil, epoch)
		b.putState(t, "r", "other", "v", nil, epoch)
		if existed := b.deleteState(t, "r", "k", epoch); !existed {
			t.Error("StateDelete of a key: existed = false")
		}
		b.wantState(t, "r", "k", epoch, "", false)
		b.wantState(t, "r", "other", epoch, "v", true)
		if existed := b.deleteState(t, "r", "k", epoch); existed {
			t.Error("StateDelete of a deleted key: existed = true")
		}
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.putState(t, "r", "k", "v", ptr(at(time.Minute)), epoch)
		b.wantState(t, "r", "k", at(time.Minute-time.Microsecond), "v", true)
		// Expired at the instant it expires.
		b.wantState(t, "r", "k", at(time.Minute), "", false)
		if existed := b.putState(t, "r", "k", "again", ptr(at(3*time.Minute)), at(2*time.Minute)); existed {
			t.Error("StatePut over an expired key: existed = true")
		}
		b.wantState(t, "r", "k", at(2*time.Minute), "again", true)

		b.putState(t, "r", "gone", "v", ptr(at(time.Minute)), epoch)
		if existed := b.deleteState(t, "r", "gone", at(time.Hour)); existed {
			t.Error("StateDelete of an expired key: existed = true")
		}
	})

	t.Run("PutAndDeletePurgeExpiredKeysOfTheirRoutine", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for _, r := range []string{"a", "b"} {
			b.putState(t, r, "old", "v", ptr(at(time.Minute)), epoch)
		}
		// Read with an earlier clock, an expired key is still there until
		// a write of its routine purges it.
		b.wantState(t, "a", "old", epoch, "v", true)
		b.putState(t, "a", "new", "v", nil, at(time.Hour))
		b.wantState(t, "a", "old", epoch, "", false)
		b.wantState(t, "b", "old", epoch, "v", true)
		b.deleteState(t, "b", "missing", at(time.Hour))
		b.wantState(t, "b", "old", epoch, "", false)
	})

	t.Run("Namespaces", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.putState(t, "a", "k", "of a", nil, epoch)
		if existed := b.putState(t, "b", "k", "of b", nil, epoch); existed {
			t.Error("StatePut: a key of routine a existed for routine b")
		}
		b.wantState(t, "a", "k", epoch, "of a", true)
		b.wantState(t, "b", "k", epoch, "of b", true)
		b.wantState(t, "c", "k", epoch, "", false)
		b.wantState(t, "a", "K", epoch, "", false) // keys are case-sensitive
		b.deleteState(t, "a", "k", epoch)
		b.wantState(t, "b", "k", epoch, "of b", true)
	})

	t.Run("LargeValue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// 64 KiB of multi-byte characters, quotes, new lines and tabs.
		unit := "é \"'\\\n\t✓ 0123456789abcdef"
		n := 64 << 10 / len(unit)
		large := strings.Repeat(unit, n) + strings.Repeat("x", 64<<10-n*len(unit))
		b.putState(t, "r", "large", large, nil, epoch)
		value, found, err := b.s.StateGet(b.ctx, &store.StateGetParams{Routine: "r", Key: "large", Now: epoch})
		if err != nil || !found || value != large {
			t.Fatalf("StateGet: %d bytes, found %v, %v; want the %d bytes put", len(value), found, err, len(large))
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const goroutines, keys = 8, 25
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for k := range keys {
					// Distinct keys, and one key every goroutine writes.
					for _, key := range []string{fmt.Sprintf("g%d/k%d", g, k), "shared"} {
						if _, err := b.s.StatePut(b.ctx, &store.StatePutParams{Routine: "r", Key: key,
							Value: fmt.Sprint(g, k), Now: epoch}); err != nil {
							t.Errorf("StatePut(%s): %v", key, err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		for g := range goroutines {
			for k := range keys {
				b.wantState(t, "r", fmt.Sprintf("g%d/k%d", g, k), epoch, fmt.Sprint(g, k), true)
			}
		}
		value, found, err := b.s.StateGet(b.ctx, &store.StateGetParams{Routine: "r", Key: "shared", Now: epoch})
		if err != nil || !found || !strings.HasSuffix(value, fmt.Sprint(keys-1)) {
			t.Errorf("StateGet(shared) = %q, %v, %v; want the last value of a goroutine", value, found, err)
		}
	})
}

func (b *testBundle) putState(t *testing.T, routine, key, value string, expires *time.Time, now time.Time) bool {
	t.Helper()
	existed, err := b.s.StatePut(b.ctx, &store.StatePutParams{Routine: routine, Key: key, Value: value,
		ExpiresAt: expires, Now: now})
	if err != nil {
		t.Fatalf("StatePut(%s, %s): %v", routine, key, err)
	}
	return existed
}

func (b *testBundle) deleteState(t *testing.T, routine, key string, now time.Time) bool {
	t.Helper()
	existed, err := b.s.StateDelete(b.ctx, &store.StateDeleteParams{Routine: routine, Key: key, Now: now})
	if err != nil {
		t.Fatalf("StateDelete(%s, %s): %v", routine, key, err)
	}
	return existed
}

// wantState fails unless StateGet at now gives value and found.
func (b *testBundle) wantState(t *testing.T, routine, key string, now time.Time, value string, found bool) {
	t.Helper()
	got, ok, err := b.s.StateGet(b.ctx, &store.StateGetParams{Routine: routine, Key: key, Now: now})
	if err != nil {
		t.Fatalf("StateGet(%s, %s): %v", routine, key, err)
	}
	if got != value || ok != found {
		t.Errorf("StateGet(%s, %s) at %v = %q, %v; want %q, %v", routine, key, now, got, ok, value, found)
	}
}
