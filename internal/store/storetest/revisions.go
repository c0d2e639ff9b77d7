package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// bundle returns bytes standing for a bundle, and their hash.
func bundle(content string) ([]byte, string) {
	b := []byte(content)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func exerciseRevisions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("PushListCurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		v1, h1 := bundle("v1")
		v2, h2 := bundle("v2 is longer")
		other, h3 := bundle("other")
		for i, p := range []*store.RevisionPutParams{
			{Routine: "triage", Hash: h1, Bundle: v1, Author: "ada", Message: "first", GitCommit: "abc123", Now: at(0)},
			{Routine: "triage", Hash: h2, Bundle: v2, Author: "bob", Message: "second", Now: at(time.Minute)},
			{Routine: "report", Hash: h3, Bundle: other, Author: "ada", Now: at(2 * time.Minute)},
		} {
			rev, created, err := b.s.RevisionPut(b.ctx, p)
			if err != nil || !created {
				t.Fatalf("put %d: created %v, %v", i, created, err)
			}
			if rev.Routine != p.Routine || rev.Hash != p.Hash || rev.Size != int64(len(p.Bundle)) || rev.Author != p.Author ||
				rev.Message != p.Message || rev.GitCommit != p.GitCommit || !rev.CreatedAt.Equal(stored(p.Now)) {
				t.Fatalf("put %d: record %+v, want the params %+v", i, rev, p)
			}
		}
		list, err := b.s.RevisionList(b.ctx, &store.RevisionListParams{Routine: "triage"})
		if err != nil || len(list) != 2 || list[0].Hash != h2 || list[1].Hash != h1 || list[0].Seq <= list[1].Seq {
			t.Fatalf("list: %+v, %v; want v2 then v1", list, err)
		}
		if one, err := b.s.RevisionList(b.ctx, &store.RevisionListParams{Routine: "triage", Limit: 1}); err != nil || len(one) != 1 || one[0].Hash != h2 {
			t.Fatalf("list limit 1: %+v, %v", one, err)
		}
		if none, err := b.s.RevisionList(b.ctx, &store.RevisionListParams{Routine: "never"}); err != nil || len(none) != 0 {
			t.Fatalf("list of a routine never pushed: %+v, %v", none, err)
		}
		cur, err := b.s.RevisionCurrent(b.ctx)
		if err != nil || len(cur) != 2 || cur[0].Routine != "report" || cur[1].Routine != "triage" || cur[1].Hash != h2 {
			t.Fatalf("current: %+v, %v", cur, err)
		}
		got, err := b.s.RevisionBundle(b.ctx, h1)
		if err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("bundle: %q, %v", got, err)
		}
		if _, err := b.s.RevisionBundle(b.ctx, "0000"); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("missing bundle: %v, want ErrNotFound", err)
		}
	})
	t.Run("SameContentChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		v1, h1 := bundle("v1")
		first, _, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "r", Hash: h1, Bundle: v1, Message: "one", Now: at(0)})
		if err != nil {
			t.Fatal(err)
		}
		again, created, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "r", Hash: h1, Bundle: v1, Message: "again", Now: at(time.Hour)})
		if err != nil || created || again.Seq != first.Seq || again.Message != "one" {
			t.Fatalf("identical push: %+v created %v, %v; want the first record, nothing created", again, created, err)
		}
		// The same bundle under another routine is its own record, and
		// the bundle is stored once.
		if _, created, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "copy", Hash: h1, Bundle: v1, Now: at(time.Hour)}); err != nil || !created {
			t.Fatalf("same bundle, other routine: created %v, %v", created, err)
		}
	})
	t.Run("RollbackIsANewRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		v1, h1 := bundle("v1")
		v2, h2 := bundle("v2")
		for i, p := range []*store.RevisionPutParams{
			{Routine: "r", Hash: h1, Bundle: v1, Now: at(0)},
			{Routine: "r", Hash: h2, Bundle: v2, Now: at(time.Minute)},
		} {
			if _, _, err := b.s.RevisionPut(b.ctx, p); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
		}
		rev, created, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "r", Hash: h1, RollbackOf: h2, Author: "ops", Message: "rollback", Now: at(2 * time.Minute)})
		if err != nil || !created || rev.Hash != h1 || rev.RollbackOf != h2 || rev.Size != 2 {
			t.Fatalf("rollback: %+v created %v, %v", rev, created, err)
		}
		list, err := b.s.RevisionList(b.ctx, &store.RevisionListParams{Routine: "r"})
		if err != nil || len(list) != 3 || list[0].Hash != h1 || list[1].Hash != h2 || list[2].Hash != h1 {
			t.Fatalf("history: %+v, %v; want v1 (rollback), v2, v1", list, err)
		}
		if _, _, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "r", Hash: "feedface", Now: at(3 * time.Minute)}); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("rollback to an unknown bundle: %v, want ErrNotFound", err)
		}
	})
	t.Run("ConcurrentIdenticalPushesCreateOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		v1, h1 := bundle("v1")
		const n = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
		)
		for range n {
			wg.Go(func() {
				_, c, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "r", Hash: h1, Bundle: v1, Now: at(0)})
				if err != nil {
					t.Error(err)
					return
				}
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		list, err := b.s.RevisionList(b.ctx, &store.RevisionListParams{Routine: "r"})
		if err != nil || len(list) != 1 || created != 1 {
			t.Fatalf("%d records (%v), %d created; want 1 and 1", len(list), err, created)
		}
	})
}
