package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

// liveness knows one dead owner.
type liveness struct {
	dead string

	mu        sync.Mutex
	forgotten []string
}

func (l *liveness) Dead(owner string) bool { return owner == l.dead }

func (l *liveness) Forget(owner string) {
	l.mu.Lock()
	l.forgotten = append(l.forgotten, owner)
	l.mu.Unlock()
}

// TestTakeOverDeadOwnerAtOnce: the runs of an owner known dead are taken
// over when the scheduler starts, though their hour-long leases hold:
// each run's surviving processes are killed before it resumes, a run
// whose processes could not be killed is not resumed, and a sub-run is
// ended cancelled (its caller calls the routine again).
func TestTakeOverDeadOwnerAtOnce(t *testing.T) {
	t.Parallel()
	work := &routine.Routine{Name: "work"}
	other, b := setup(t, 0)
	ctx := context.Background()
	other.Shutdown(ctx) // the only scheduler on the store is the one under test
	create := func(owner string, trig routine.TriggerInfo) string {
		run, err := b.st.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "work", Trigger: trig,
			State: routine.StateRunning, QueuedAt: time.Now(), Worker: owner, Lease: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return run.ID
	}
	payload, _ := json.Marshal(routine.SubrunPayload{ParentRunID: "p", ParentRoutine: "caller", ParentStep: "call"})
	resumed := create("ghost", routine.TriggerInfo{Kind: "api"})
	stuck := create("ghost", routine.TriggerInfo{Kind: "api"})
	sub := create("ghost", routine.TriggerInfo{Kind: routine.TriggerRoutine, Payload: payload})
	alive := create("someone", routine.TriggerInfo{Kind: "api"})

	var mu sync.Mutex
	killed := map[string]bool{}
	live := &liveness{dead: "ghost"}
	s := scheduler.New(scheduler.Config{
		Store: b.st, Executor: checkKilled{b.exec, &mu, killed}, Catalog: scheduler.NewCatalog([]*routine.Routine{work}),
		Worker: "test:2", Workers: 4, Lease: time.Hour, Poll: time.Hour, Liveness: live,
		KillRunProcesses: func(_ context.Context, id string) error {
			if id == stuck {
				return errors.New("cgroup busy")
			}
			mu.Lock()
			killed[id] = true
			mu.Unlock()
			return nil
		},
	})
	s.Start(ctx)
	t.Cleanup(func() { s.Shutdown(ctx) })
	select {
	case id := <-b.exec.done:
		if id != resumed {
			t.Fatalf("executed %s, want %s", id, resumed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dead owner's run was not resumed at once")
	}
	get := func(id string) *routine.Run {
		run, err := b.st.RunGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	deadline := time.Now().Add(10 * time.Second)
	for !get(sub).State.Final() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	subKilled := killed[sub]
	mu.Unlock()
	if run := get(sub); run.State != routine.StateCancelled || !subKilled {
		t.Errorf("sub-run of the dead owner: %s, killed %v; want cancelled after its processes were killed", run.State, subKilled)
	}
	if run := get(stuck); run.State != routine.StateRunning || run.Worker != "test:2" {
		t.Errorf("run whose processes survived: %s held by %q; want left running, held until this lease expires", run.State, run.Worker)
	}
	if run := get(alive); run.Worker != "someone" {
		t.Errorf("a live owner's run was taken by %q", run.Worker)
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	if len(live.forgotten) != 1 || live.forgotten[0] != "ghost" {
		t.Errorf("forgotten %v, want [ghost]", live.forgotten)
	}
}

// checkKilled executes only runs whose processes were killed first.
type checkKilled struct {
	next   scheduler.Executor
	mu     *sync.Mutex
	killed map[string]bool
}

func (c checkKilled) Execute(ctx context.Context, r *routine.Routine, run *routine.Run) (*routine.Run, error) {
	c.mu.Lock()
	ok := c.killed[run.ID]
	c.mu.Unlock()
	if !ok {
		return nil, errors.New("resumed before its processes were killed")
	}
	return c.next.Execute(ctx, r, run)
}
