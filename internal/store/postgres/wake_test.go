package postgres_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// listenSQL finds the backends that listen for wake-ups on the test's
// database.
const listenSQL = `SELECT pid FROM pg_stat_activity
	WHERE datname = current_database() AND query = 'LISTEN routines_wake'`

func (b *testBundle) queue(t *testing.T, s store.Store) {
	t.Helper()
	if _, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "r", QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// listening returns the channel of wake-ups of a store, past its first
// wake-up, and another store on the same database, to write with.
func listening(t *testing.T) (ch <-chan struct{}, writer *postgres.Store, b *testBundle) {
	t.Helper()
	listener, b := setup(t)
	ch = listener.Wakeups(b.ctx)
	storetest.WaitWake(t, ch, "subscribing")
	return ch, b.open(t, postgres.Options{}), b
}

// A write through one store wakes the listeners of another: servers and
// workers on many machines hear each other.
func TestWakeAcrossStores(t *testing.T) {
	t.Parallel()
	ch, writer, b := listening(t)
	b.queue(t, writer)
	storetest.WaitWake(t, ch, "a run queued through another store")
}

// The end of a run claimed without a ceiling or reservations wakes
// nobody: it frees only its worker's slot, and a notification to every
// worker at every end cost more than the rest of a no-op run. Under a
// ceiling it wakes (storetest's CheckpointEndsUnderCeiling), and under
// reservations, which count the fleet's free slots.
func TestWakeAtEndOnlyWhenAClaimMayWait(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		reserved map[string]int
		wakes    bool
	}{{"NoCeiling", nil, false}, {"Reservations", map[string]int{"other": 1}, true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch, writer, b := listening(t)
			b.queue(t, writer)
			storetest.WaitWake(t, ch, "a run queued")
			// Slots in the fleet beyond the reservation's.
			if err := writer.WorkerBeat(b.ctx, &store.WorkerBeatParams{ID: "w", Slots: 4, Now: time.Now()}); err != nil {
				t.Fatal(err)
			}
			claimed, err := writer.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: time.Now(), Lease: time.Minute,
				Reserved: c.reserved})
			if err != nil || len(claimed) != 1 {
				t.Fatalf("RunClaim = %d runs, %v; want 1", len(claimed), err)
			}
			run := claimed[0].Run
			run.State = routine.StateSucceeded
			if err := writer.Checkpoint(b.ctx, &store.CheckpointParams{Run: run}); err != nil {
				t.Fatal(err)
			}
			if c.wakes {
				storetest.WaitWake(t, ch, "the end of a run claimed under reservations")
				return
			}
			select {
			case <-ch:
				t.Fatal("woken by the end of a run claimed without a ceiling")
			case <-time.After(500 * time.Millisecond): // a notification takes milliseconds
			}
			b.queue(t, writer)
			storetest.WaitWake(t, ch, "a run queued after the end")
		})
	}
}

// A listener whose connection is lost connects again, wakes its channels
// (writes may have gone unheard meanwhile), and hears writes again.
func TestWakeReconnects(t *testing.T) {
	t.Parallel()
	ch, writer, b := listening(t)
	raw := b.raw(t)
	var pid int
	if err := raw.QueryRow(b.ctx, listenSQL).Scan(&pid); err != nil {
		t.Fatalf("the listening backend: %v", err)
	}
	if _, err := raw.Exec(b.ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	storetest.WaitWake(t, ch, "the listening connection lost")
	// Listening again: a new backend, which hears writes.
	eventually(t, "a new backend listens after the first was terminated", func() bool {
		var again int
		return raw.QueryRow(b.ctx, listenSQL).Scan(&again) == nil && again != pid
	})
	b.queue(t, writer)
	storetest.WaitWake(t, ch, "a run queued after reconnecting")
}

// Closing the store closes the channels of its wake-ups and the listening
// connection.
func TestWakeClosesWithStore(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	s := b.open(t, postgres.Options{})
	ch := s.Wakeups(b.ctx)
	storetest.WaitWake(t, ch, "subscribing")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a wake-up after Close, want the channel closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel did not close with the store")
	}
	if _, ok := <-s.Wakeups(b.ctx); ok {
		t.Fatal("Wakeups of a closed store gave an open channel")
	}
	// A backend ends a moment after its client leaves.
	raw := b.raw(t)
	eventually(t, "no backend listens after Close", func() bool {
		var n int
		if err := raw.QueryRow(b.ctx, "SELECT count(*) FROM ("+listenSQL+") l").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// eventually fails t unless cond holds within 10 s, checking it every 20 ms:
// for what the database does a moment after a client asked.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 10s: %s", what)
		}
	}
}

// Waiting for wake-ups costs the database no query: the listening backend
// stays idle, its state unchanged, while nothing is written.
func TestWakeIdleSendsNoQuery(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	storetest.WaitWake(t, s.Wakeups(b.ctx), "subscribing")
	raw := b.raw(t)
	stateChange := func() (since time.Time) {
		t.Helper()
		if err := raw.QueryRow(b.ctx, `SELECT state_change FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN routines_wake' AND state = 'idle'`).Scan(&since); err != nil {
			t.Fatalf("the idle listening backend: %v", err)
		}
		return since
	}
	before := stateChange()
	time.Sleep(time.Second)
	if after := stateChange(); !after.Equal(before) {
		t.Fatalf("the listening backend ran a statement while nothing was written (state changed at %v, then %v)", before, after)
	}
}
