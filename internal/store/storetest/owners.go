package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// exerciseOwners checks what makes every running run someone's: runs
// created running by their executor, leased to it, and the early end of
// a dead worker's leases.
func exerciseOwners(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CreateRunningLeased", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		fg := b.createRun(t, func(p *store.RunCreateParams) {
			p.State, p.Worker, p.Lease = routine.StateRunning, "fg-1", lease
		})
		if fg.Worker != "fg-1" || fg.State != routine.StateRunning {
			t.Fatalf("RunCreate = %s; want running, held by fg-1", show(fg))
		}
		if got := b.getRun(t, fg.ID); got.Worker != "fg-1" {
			t.Fatalf("stored worker %q, want fg-1", got.Worker)
		}
		queued := b.queue(t, "r", time.Second)
		// While its lease holds, the foreground run is not claimable and
		// holds its routine's slot.
		if got := b.claim(t, "daemon", at(lease-time.Microsecond), "r", 1); got != "" {
			t.Fatalf("claimed %s: the foreground run's lease holds and the ceiling is 1", got)
		}
		if got := b.claim(t, "daemon", at(lease-time.Microsecond)); got != queued {
			t.Fatalf("claimed %q, want the queued run %s and never the leased one", got, queued)
		}
		// Its creator renews the lease as a claimer does.
		if hb, err := b.s.RunHeartbeat(b.ctx, &store.RunHeartbeatParams{Worker: "fg-1", Now: at(lease - time.Second), Lease: lease}); err != nil || !slices.Equal(hb.Renewed, []string{fg.ID}) {
			t.Fatalf("RunHeartbeat of the creator = %+v, %v; want %s renewed", hb, err, fg.ID)
		}
		if got := b.claim(t, "daemon", at(lease)); got != "" {
			t.Fatalf("claimed %s whose lease was renewed", got)
		}
		// Unrenewed, it is taken over like a claimed run.
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "daemon", Now: at(2 * lease), Lease: lease})
		if err != nil || len(runs) != 1 || runs[0].ID != fg.ID || runs[0].TakenFrom != "fg-1" {
			t.Fatalf("RunClaim after the lease = %v, %v; want %s taken from fg-1", runs, err, fg.ID)
		}
		// A run created running without a worker has no lease: never claimable.
		b.finish(t, queued)
		b.finish(t, fg.ID)
		b.createRun(t, func(p *store.RunCreateParams) { p.State = routine.StateRunning })
		if got := b.claim(t, "daemon", at(time.Hour)); got != "" {
			t.Fatalf("claimed %s", got)
		}
	})

	t.Run("ExpireDeadWorker", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		running := func(worker string, d time.Duration) string {
			return b.createRun(t, func(p *store.RunCreateParams) {
				p.State, p.Worker, p.Lease, p.QueuedAt = routine.StateRunning, worker, lease, at(d)
			}).ID
		}
		dead1, alive, dead2 := running("dead", 0), running("alive", time.Second), running("dead", 2*time.Second)
		queued := b.queue(t, "r", 3*time.Second)
		b.finish(t, running("dead", 4*time.Second))
		holders, err := b.s.RunHolders(b.ctx)
		slices.Sort(holders)
		if err != nil || !slices.Equal(holders, []string{"alive", "dead"}) {
			t.Fatalf("RunHolders = %v, %v; want [alive dead]", holders, err)
		}
		now := at(5 * time.Second)
		n, err := b.s.RunExpire(b.ctx, &store.RunExpireParams{Worker: "dead", Now: now})
		if err != nil || n != 2 {
			t.Fatalf("RunExpire = %d, %v; want 2 (the finished run has no lease to end)", n, err)
		}
		if got := b.getRun(t, dead1); got.Worker != "dead" || got.State != routine.StateRunning {
			t.Fatalf("expired run = %s; want still running, held by dead until claimed", show(got))
		}
		// The dead worker's runs are claimable at once, oldest first and
		// before the queued run, and no longer hold their slots.
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: now, Lease: lease,
			Ceilings: map[string]int{"r": 3}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got, from []string
		for _, r := range runs {
			got, from = append(got, r.ID), append(from, r.TakenFrom)
		}
		if !slices.Equal(got, []string{dead1, dead2}) || !slices.Equal(from, []string{"dead", "dead"}) {
			t.Fatalf("claimed %v from %v; want %v from the dead worker (ceiling 3: alive's run holds the third slot)", got, from, []string{dead1, dead2})
		}
		if got := b.claim(t, "w", now); got != queued {
			t.Fatalf("claimed %q, want %s and never %s, whose lease holds", got, queued, alive)
		}
		// Expiring again, or a worker with nothing, ends nothing.
		if n, err := b.s.RunExpire(b.ctx, &store.RunExpireParams{Worker: "dead", Now: now}); err != nil || n != 0 {
			t.Fatalf("RunExpire again = %d, %v; want 0", n, err)
		}
	})
}
