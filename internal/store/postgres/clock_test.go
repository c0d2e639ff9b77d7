package postgres_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
)

// skew is how far the clocks of the workers of the clock tests are off,
// one ahead and one behind.
const skew = time.Hour

// skewedWorkers are two workers on one database, one whose clock is skew
// ahead and one skew behind, each with a store of its own.
type skewedWorkers struct {
	b             *testBundle
	ahead, behind *postgres.Store
}

func newSkewedWorkers(t *testing.T, opts postgres.Options) *skewedWorkers {
	t.Helper()
	_, b := setup(t)
	return &skewedWorkers{b: b, ahead: b.open(t, opts), behind: b.open(t, opts)}
}

// queue creates a queued run, as a server whose clock reads now does.
func (w *skewedWorkers) queue(t *testing.T, st *postgres.Store, now time.Time, notBefore *time.Time) string {
	t.Helper()
	run, err := st.RunCreate(w.b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "r", QueuedAt: now, NotBefore: notBefore})
	if err != nil {
		t.Fatal(err)
	}
	return run.ID
}

// claim claims a run as worker, whose clock is off by off, and returns its
// id and the worker it was taken from, or "" when nothing is claimable.
func (w *skewedWorkers) claim(t *testing.T, st *postgres.Store, worker string, off, lease time.Duration) (id, from string) {
	t.Helper()
	runs, err := st.RunClaim(w.b.ctx, &store.RunClaimParams{Worker: worker, Now: time.Now().Add(off), Lease: lease})
	if err != nil {
		t.Fatalf("%s: RunClaim: %v", worker, err)
	}
	if len(runs) == 0 {
		return "", ""
	}
	return runs[0].ID, runs[0].TakenFrom
}

// claimAfter claims as worker, whose clock is off by off, until a run is
// taken, and fails unless that comes at least wait after since, and
// within 10 s more.
func (w *skewedWorkers) claimAfter(t *testing.T, st *postgres.Store, worker string, off time.Duration, since time.Time, wait time.Duration) (id, from string) {
	t.Helper()
	for {
		if id, from := w.claim(t, st, worker, off, time.Minute); id != "" {
			if waited := time.Since(since); waited < wait {
				t.Fatalf("%s claimed %s after %v, before %v", worker, id, waited, wait)
			}
			return id, from
		}
		if waited := time.Since(since); waited > wait+10*time.Second {
			t.Fatalf("%s claimed nothing in %v, want a run after %v", worker, waited, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With the database's clock, two workers whose clocks are two hours apart
// agree on leases: neither takes the other's live run, and a lease that
// ran out is taken over at once, though by the clock of the worker behind
// it would hold for an hour more.
func TestDatabaseClockLeases(t *testing.T) {
	t.Parallel()
	w := newSkewedWorkers(t, postgres.Options{DatabaseClock: true})
	first := w.queue(t, w.ahead, time.Now().Add(skew), nil)
	if id, _ := w.claim(t, w.behind, "behind", -skew, time.Minute); id != first {
		t.Fatalf("behind claimed %q, want %s", id, first)
	}
	// By its clock, ahead sees the lease of a minute long gone.
	if id, _ := w.claim(t, w.ahead, "ahead", skew, time.Minute); id != "" {
		t.Fatalf("ahead took %s, whose lease holds", id)
	}
	// A heartbeat from behind's clock extends the lease by the database's.
	hb, err := w.behind.RunHeartbeat(w.b.ctx, &store.RunHeartbeatParams{Worker: "behind", Now: time.Now().Add(-skew), Lease: time.Minute})
	if err != nil || len(hb.Renewed) != 1 {
		t.Fatalf("RunHeartbeat = %+v, %v; want 1 renewed", hb, err)
	}
	if id, _ := w.claim(t, w.ahead, "ahead", skew, time.Minute); id != "" {
		t.Fatalf("ahead took %s after the heartbeat", id)
	}
	// Ended early as of the database's clock, the lease is over for ahead.
	if n, err := w.ahead.RunExpire(w.b.ctx, &store.RunExpireParams{Worker: "behind", Now: time.Now().Add(-2 * skew)}); err != nil || n != 1 {
		t.Fatalf("RunExpire = %d, %v; want 1", n, err)
	}
	if id, from := w.claim(t, w.ahead, "ahead", skew, time.Minute); id != first || from != "behind" {
		t.Fatalf("ahead claimed %q from %q, want %s from behind", id, from, first)
	}

	// A short lease of ahead's runs out by the database's clock: behind,
	// whose clock is two hours earlier, takes the run over.
	second := w.queue(t, w.behind, time.Now().Add(-skew), nil)
	const short = 2 * time.Second
	claimed := time.Now()
	if id, _ := w.claim(t, w.ahead, "ahead", skew, short); id != second {
		t.Fatalf("ahead claimed %q, want %s", id, second)
	}
	if id, from := w.claimAfter(t, w.behind, "behind", -skew, claimed, short); id != second || from != "ahead" {
		t.Fatalf("behind claimed %s from %q, want %s from ahead", id, from, second)
	}
}

// Without the database's clock, each worker judges leases by its own:
// the worker ahead takes the live run of the one behind. This is what
// DatabaseClock is for, and shows that TestDatabaseClockLeases tells the
// two apart.
func TestCallersClockLeases(t *testing.T) {
	t.Parallel()
	w := newSkewedWorkers(t, postgres.Options{})
	first := w.queue(t, w.ahead, time.Now(), nil)
	if id, _ := w.claim(t, w.behind, "behind", -skew, time.Minute); id != first {
		t.Fatalf("behind claimed %q, want %s", id, first)
	}
	if id, from := w.claim(t, w.ahead, "ahead", skew, time.Minute); id != first || from != "behind" {
		t.Fatalf("ahead claimed %q from %q; want the live run %s taken from behind, as the callers' clocks say", id, from, first)
	}
}

// With the database's clock, a delay chosen on a skewed clock is kept: a
// run due now by its creator's clock is due now, one delayed by an hour
// is not, and a run put back for a while comes due after that while.
func TestDatabaseClockNotBefore(t *testing.T) {
	t.Parallel()
	w := newSkewedWorkers(t, postgres.Options{DatabaseClock: true})
	now := time.Now().Add(skew) // ahead's clock
	later := now.Add(time.Hour)
	w.queue(t, w.ahead, now, &later)
	due := w.queue(t, w.ahead, now, &now)
	if id, _ := w.claim(t, w.behind, "behind", -skew, time.Minute); id != due {
		t.Fatalf("behind claimed %q, want %s, due by its creator's clock", id, due)
	}
	if id, _ := w.claim(t, w.ahead, "ahead", skew, time.Minute); id != "" {
		t.Fatalf("ahead claimed %s, not due for an hour", id)
	}
	// Behind puts the run back for a second, by its clock.
	const delay = time.Second
	behindNow := time.Now().Add(-skew)
	requeued := time.Now()
	if err := w.behind.RunRequeue(w.b.ctx, &store.RunRequeueParams{ID: due, Worker: "behind",
		NotBefore: new(behindNow.Add(delay)), Now: behindNow}); err != nil {
		t.Fatal(err)
	}
	if id, _ := w.claimAfter(t, w.ahead, "ahead", skew, requeued, delay); id != due {
		t.Fatalf("ahead claimed %s, want %s", id, due)
	}
}
