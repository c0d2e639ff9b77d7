package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// exercisePlacement checks that a claim with a worker's placement takes
// only the runs whose region and labels it meets, in queue order among
// those, and the registry of workers.
func exercisePlacement(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ClaimByPlacement", func(t *testing.T) {
		t.Parallel()
		place := routine.NewPlacement
		// The runs, oldest first, and what each requires.
		queue := []struct {
			name string
			need routine.Placement
		}{
			{"gpu", place("", []string{"gpu"})},
			{"any1", routine.Placement{}},
			{"eu", place("eu-west", nil)},
			{"eu-gpu-ssd", place("eu-west", []string{"ssd", "gpu"})},
			{"us", place("us-east", nil)},
			{"any2", routine.Placement{}},
		}
		for _, tc := range []struct {
			name   string
			worker *routine.Placement
			want   []string
		}{
			// A local daemon (no placement) takes everything.
			{"none", nil, []string{"gpu", "any1", "eu", "eu-gpu-ssd", "us", "any2"}},
			// A worker without region or labels, only what asks for nothing.
			{"bare", &routine.Placement{}, []string{"any1", "any2"}},
			{"us-east", ptr(place("us-east", nil)), []string{"any1", "us", "any2"}},
			{"us-east gpu", ptr(place("us-east", []string{"gpu"})), []string{"gpu", "any1", "us", "any2"}},
			// eu-gpu-ssd needs ssd too.
			{"eu-west gpu", ptr(place("eu-west", []string{"gpu"})), []string{"gpu", "any1", "eu", "any2"}},
			// More labels than a run needs take it.
			{"eu-west gpu ssd arm", ptr(place("eu-west", []string{"arm", "ssd", "gpu"})),
				[]string{"gpu", "any1", "eu", "eu-gpu-ssd", "any2"}},
		} {
			// With a ceiling (on another routine), a claim looks at
			// routines before it takes a run: that path filters too.
			for _, ceilings := range []map[string]int{nil, {"other": 3}} {
				name := tc.name
				if ceilings != nil {
					name += " with a ceiling"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					b := setup(t, open)
					names := map[string]string{} // run id → its name in queue
					for i, q := range queue {
						run := b.createRun(t, func(p *store.RunCreateParams) {
							p.Routine, p.QueuedAt, p.Requires = q.name, at(time.Duration(i)*time.Second), q.need
						})
						if !samePlacement(run.Requires, q.need) {
							t.Fatalf("RunCreate of %s requires %v, want %v", q.name, run.Requires, q.need)
						}
						names[run.ID] = q.name
					}
					runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "w", Now: at(time.Minute), Lease: lease,
						Ceilings: ceilings, Limit: len(queue), Placement: tc.worker})
					if err != nil {
						t.Fatalf("RunClaim: %v", err)
					}
					var got []string
					for _, run := range runs {
						got = append(got, names[run.ID])
						want := ""
						if tc.worker != nil {
							want = tc.worker.Region
						}
						if run.Region != want || b.getRun(t, run.ID).Region != want {
							t.Errorf("claimed run %s: region %q, want the worker's %q", names[run.ID], run.Region, want)
						}
					}
					if !slices.Equal(got, tc.want) {
						t.Fatalf("claimed %v, want %v", got, tc.want)
					}
					// What it could not take is still there, in order, for
					// a worker that can.
					left := b.claimAll(t, at(time.Minute))
					if len(left)+len(got) != len(queue) {
						t.Fatalf("left %d runs after taking %d of %d", len(left), len(got), len(queue))
					}
				})
			}
		}
	})

	t.Run("ClaimByPlacementOneByOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		gpu := routine.NewPlacement("", []string{"gpu"})
		g1 := b.createRun(t, func(p *store.RunCreateParams) { p.Requires = gpu }).ID
		a1 := b.queue(t, "r", time.Second)
		g2 := b.createRun(t, func(p *store.RunCreateParams) { p.QueuedAt, p.Requires = at(2*time.Second), gpu }).ID
		a2 := b.queue(t, "r", 3*time.Second)
		cpu := &routine.Placement{Region: "us-east"}
		// Runs a worker cannot take hold back nothing, one claim at a time.
		for _, want := range []string{a1, a2, ""} {
			runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "cpu", Now: at(time.Minute), Lease: time.Hour, Placement: cpu})
			switch {
			case err != nil:
				t.Fatalf("RunClaim: %v", err)
			case want == "" && len(runs) != 0:
				t.Fatalf("claimed %s, which needs gpu", runs[0].ID)
			case want != "" && (len(runs) != 1 || runs[0].ID != want):
				t.Fatalf("claimed %v, want %s", runs, want)
			}
		}
		// A gpu worker takes them in order; one whose lease expires is
		// taken over by a gpu worker only.
		withGPU := &routine.Placement{Region: "us-east", Labels: []string{"gpu"}}
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "gpu1", Now: at(time.Minute), Lease: lease, Placement: withGPU})
		if err != nil || len(runs) != 1 || runs[0].ID != g1 {
			t.Fatalf("RunClaim by a gpu worker = %v, %v; want %s", runs, err, g1)
		}
		expired := at(time.Minute + lease)
		runs, err = b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "cpu", Now: expired, Lease: lease, Placement: cpu})
		if err != nil || len(runs) != 0 {
			t.Fatalf("RunClaim by a worker without gpu after the lease = %v, %v; want none", runs, err)
		}
		runs, err = b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "gpu2", Now: expired, Lease: lease, Placement: withGPU, Limit: 5})
		if err != nil || len(runs) != 2 || runs[0].ID != g1 || runs[0].TakenFrom != "gpu1" || runs[1].ID != g2 {
			t.Fatalf("RunClaim by another gpu worker after the lease = %v, %v; want %s taken from gpu1, then %s", runs, err, g1, g2)
		}
	})

	t.Run("Workers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		beat := func(id string, pl routine.Placement, slots int, now time.Time) {
			t.Helper()
			if err := b.s.WorkerBeat(b.ctx, &store.WorkerBeatParams{ID: id, Placement: pl, Slots: slots, Now: now}); err != nil {
				t.Fatalf("WorkerBeat(%s): %v", id, err)
			}
		}
		list := func(now time.Time, want ...*store.Worker) {
			t.Helper()
			got, err := b.s.WorkerList(b.ctx, now)
			if err != nil {
				t.Fatalf("WorkerList: %v", err)
			}
			for _, w := range got {
				if w.StartedAt.Location() != time.UTC || w.BeatAt.Location() != time.UTC {
					t.Errorf("worker %s: times not in UTC", w.ID)
				}
			}
			if (len(got) > 0 || len(want) > 0) && show(got) != show(want) {
				t.Fatalf("WorkerList at %v =\n%s\nwant\n%s", now, show(got), show(want))
			}
		}
		list(epoch)
		gpu := routine.NewPlacement("eu-west", []string{"gpu"})
		beat("w2", routine.Placement{}, 2, at(10*time.Second))
		beat("w1", gpu, 4, epoch)
		w1 := &store.Worker{ID: "w1", Placement: gpu, Slots: 4, StartedAt: stored(epoch), BeatAt: stored(epoch)}
		w2 := &store.Worker{ID: "w2", Slots: 2, StartedAt: stored(at(10 * time.Second)), BeatAt: stored(at(10 * time.Second))}
		list(at(20*time.Second), w1, w2)
		// A beat replaces what is known of a worker but when it started.
		more := routine.NewPlacement("eu-west", []string{"gpu", "ssd"})
		beat("w1", more, 8, at(25*time.Second))
		w1 = &store.Worker{ID: "w1", Placement: more, Slots: 8, StartedAt: stored(epoch), BeatAt: stored(at(25 * time.Second))}
		list(at(26*time.Second), w1, w2)
		// Live for WorkerTimeout after its last beat.
		list(at(10*time.Second+store.WorkerTimeout-time.Microsecond), w1, w2)
		list(at(10*time.Second+store.WorkerTimeout), w1)
		list(at(25*time.Second + store.WorkerTimeout))
		// A worker that stops leaves; one that died is forgotten after
		// WorkerForget, when another beats.
		if left, err := b.s.WorkerLeave(b.ctx, "w1"); err != nil || !left {
			t.Fatalf("WorkerLeave(w1) = %v, %v; want true", left, err)
		}
		if left, err := b.s.WorkerLeave(b.ctx, "w1"); err != nil || left {
			t.Fatalf("WorkerLeave(w1) again = %v, %v; want false", left, err)
		}
		late := at(10*time.Second + store.WorkerForget + time.Second)
		beat("w3", routine.Placement{}, 1, late)
		list(late, &store.Worker{ID: "w3", Slots: 1, StartedAt: stored(late), BeatAt: stored(late)})
		if left, err := b.s.WorkerLeave(b.ctx, "w2"); err != nil || left {
			t.Fatalf("WorkerLeave(w2), dead for longer than WorkerForget = %v, %v; want it forgotten already", left, err)
		}
	})
}

// samePlacement reports whether two placements ask for the same.
func samePlacement(a, b routine.Placement) bool {
	return a.Region == b.Region && slices.Equal(a.Labels, b.Labels)
}
