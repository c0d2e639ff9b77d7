package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// Servers, each with a store of its own, receive the same events at once:
// of each key, exactly one creates a run, and the others fold into it.
func TestDedupeAcrossStores(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	const servers, perServer, keys = 8, 3, 10
	var (
		mu      sync.Mutex
		created = map[string]int{}    // key → runs created
		runOf   = map[string]string{} // key → run id
		wg      sync.WaitGroup
	)
	queued := time.Now()
	until := queued.Add(time.Minute)
	for range servers {
		st := b.open(t, postgres.Options{})
		for range perServer {
			wg.Go(func() {
				for k := range keys {
					key := fmt.Sprint("host-", k)
					run, dup, err := st.RunCreateDeduped(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "alerts",
						Trigger: routine.TriggerInfo{Kind: "event"}, QueuedAt: queued, DedupeKey: key, DedupeUntil: &until})
					if err != nil {
						t.Errorf("RunCreateDeduped: %v", err)
						return
					}
					mu.Lock()
					if !dup {
						created[key]++
					}
					if prev, ok := runOf[key]; ok && prev != run.ID {
						t.Errorf("key %s: runs %s and %s", key, prev, run.ID)
					}
					runOf[key] = run.ID
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for k := range keys {
		if key := fmt.Sprint("host-", k); created[key] != 1 {
			t.Errorf("key %s: %d runs created, want 1", key, created[key])
		}
	}
	counts, err := s.RunCount(b.ctx, &store.RunCountParams{Routine: "alerts"})
	if err != nil || counts[routine.StateQueued] != keys {
		t.Fatalf("RunCount = %v, %v; want %d queued runs", counts, err, keys)
	}
}
