package scheduler_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// The queue records on each queued run the region and labels of its
// routine; a run created running executes where its creator does, and
// asks for nothing.
func TestQueueRecordsPlacement(t *testing.T) {
	t.Parallel()
	q, st, _, _ := queueSetup(t)
	r := &routine.Routine{Name: "render", Region: "eu-west", Labels: []string{"ssd", "gpu"}}
	sub, _, err := q.Enqueue(t.Context(), &scheduler.Request{Routine: r, Trigger: routine.TriggerInfo{Kind: routine.TriggerRoutine},
		Running: true, Holder: "caller:1", Lease: time.Minute})
	if err != nil || !sub.Requires.IsZero() {
		t.Fatalf("a run created running: requires %v, %v; want nothing", sub.Requires, err)
	}
	run, _, err := q.Enqueue(t.Context(), &scheduler.Request{Routine: r, Trigger: routine.TriggerInfo{Kind: "api"}})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.RunGet(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := routine.Placement{Region: "eu-west", Labels: []string{"gpu", "ssd"}}
	for _, got := range []routine.Placement{run.Requires, stored.Requires} {
		if got.Region != want.Region || !slices.Equal(got.Labels, want.Labels) {
			t.Fatalf("run requires %v, want %v", got, want)
		}
	}
}

// Workers of a deployment each run only what their placement meets, are
// in the registry while they work, and leave it when they stop; a local
// daemon runs every routine whatever its region.
func TestWorkersRunWhatTheirPlacementMeets(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	gpu := &routine.Routine{Name: "render", Region: "eu-west", Labels: []string{"gpu"}}
	anywhere := &routine.Routine{Name: "ping"}
	catalog := scheduler.NewCatalog([]*routine.Routine{gpu, anywhere})
	exec := &executor{st: st, done: make(chan string, 100)}
	worker := func(id string, pl routine.Placement) *scheduler.Scheduler {
		s := scheduler.New(scheduler.Config{Store: st, Executor: exec, Catalog: catalog, Worker: id, Workers: 2,
			Lease: time.Minute, Poll: 50 * time.Millisecond, Placement: &pl})
		s.Start(context.Background())
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		return s
	}
	us := worker("us", routine.Placement{Region: "us-east", Labels: []string{"gpu"}})
	eu := worker("eu", routine.Placement{Region: "eu-west", Labels: []string{"gpu", "ssd"}})

	live, err := st.WorkerList(t.Context(), time.Now())
	if err != nil || len(live) != 2 || live[0].ID != "eu" || live[1].ID != "us" || live[0].Slots != 2 ||
		!slices.Equal(live[0].Placement.Labels, []string{"gpu", "ssd"}) {
		t.Fatalf("registry = %v, %v; want eu and us, 2 slots each", show(live), err)
	}

	want := map[string]string{} // run id → the worker that must run it
	for range 6 {
		for _, r := range []*routine.Routine{gpu, anywhere} {
			run, err := enqueue(t.Context(), st, us, r)
			if err != nil {
				t.Fatal(err)
			}
			want[run.ID] = ""
			if r == gpu {
				want[run.ID] = "eu"
			}
		}
	}
	for range want {
		select {
		case <-exec.done:
		case <-time.After(5 * time.Second):
			t.Fatal("runs not executed")
		}
	}
	for id, who := range want {
		run, err := st.RunGet(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		region := map[string]string{"us": "us-east", "eu": "eu-west"}[run.Worker]
		if run.State != routine.StateSucceeded || (who != "" && run.Worker != who) || run.Region != region {
			t.Errorf("run of %s: %s by %q in %q; want succeeded by %s in its region", run.Routine, run.State, run.Worker, run.Region, orAny(who))
		}
	}

	eu.Shutdown(context.Background())
	if live, err := st.WorkerList(t.Context(), time.Now()); err != nil || len(live) != 1 || live[0].ID != "us" {
		t.Fatalf("registry after eu stopped = %v, %v; want us alone", show(live), err)
	}
	// Nobody left may run render: its run waits.
	run, err := enqueue(t.Context(), st, us, gpu)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-exec.done:
		t.Fatalf("run %s executed by a worker of another region", id)
	case <-time.After(300 * time.Millisecond):
	}
	if got, err := st.RunGet(t.Context(), run.ID); err != nil || got.State != routine.StateQueued {
		t.Fatalf("run of render = %v, %v; want it queued", got, err)
	}

	// A local daemon, without placement, runs it.
	local := scheduler.New(scheduler.Config{Store: st, Executor: exec, Catalog: catalog, Worker: "local", Workers: 1,
		Lease: time.Minute, Poll: time.Hour})
	local.Start(context.Background())
	t.Cleanup(func() { local.Shutdown(context.Background()) })
	select {
	case id := <-exec.done:
		if id != run.ID {
			t.Fatalf("ran %s, want %s", id, run.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the local daemon did not run a routine with a region")
	}
	if live, err := st.WorkerList(t.Context(), time.Now()); err != nil || len(live) != 1 {
		t.Fatalf("registry with a local daemon = %v, %v; want the local daemon left out", show(live), err)
	}
}

func orAny(worker string) string {
	if worker == "" {
		return "any worker"
	}
	return worker
}

// show lists workers as id region [labels] slots, for messages.
func show(ws []*store.Worker) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("%s %s %d", w.ID, w.Placement, w.Slots))
	}
	return out
}

// Workers of a deployment keep a routine's reserved slots free across the
// fleet, not each in its own slots: two workers of 2 slots, with 2
// reserved for a, run 2 runs of b at once (each keeping 2 of its own free
// would run none; ignoring the reservation, 4).
func TestWorkersKeepReservedSlotsAcrossTheFleet(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	a := &routine.Routine{Name: "a", Concurrency: &routine.Concurrency{Reserved: 2}}
	b := &routine.Routine{Name: "b"}
	catalog := scheduler.NewCatalog([]*routine.Routine{a, b})
	exec := newPerRoutine(st, 30*time.Millisecond)
	var workers []*scheduler.Scheduler
	for _, id := range []string{"w1", "w2"} {
		s := scheduler.New(scheduler.Config{Store: st, Executor: exec, Catalog: catalog, Worker: id, Workers: 2,
			Lease: time.Minute, Poll: 50 * time.Millisecond, Waker: st, Placement: &routine.Placement{}})
		s.Start(context.Background())
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		workers = append(workers, s)
	}
	const flood = 20
	for range flood {
		if _, err := enqueue(t.Context(), st, workers[0], b); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the flood is being worked
	run, err := enqueue(t.Context(), st, workers[1], a)
	if err != nil {
		t.Fatal(err)
	}
	exec.wait(t, flood+1)
	exec.mu.Lock()
	defer exec.mu.Unlock()
	if exec.hi["b"] != 2 {
		t.Errorf("b ran %d at once on 4 slots with 2 reserved for a, want 2", exec.hi["b"])
	}
	// a started on a reserved slot, ahead of the b runs queued before it.
	if !exec.started[run.ID].Before(lastStart(exec.started, run.ID)) {
		t.Errorf("a started after the b runs queued before it: it waited for them, not on a reserved slot")
	}
}

// openStore opens a store in a new file, closed when the test ends.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
