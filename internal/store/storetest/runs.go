package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseRuns(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CreateGetEveryField", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		p := &store.RunCreateParams{
			ID:       newID(),
			Routine:  "support-triage",
			Revision: "sha256:0123abcd",
			Trigger: routine.TriggerInfo{Kind: "webhook",
				Payload: []byte(`{"path": "/support", "body": {"n": 1, "ok": true, "tags": ["a", "b"]}}`)},
			Input:    map[string]string{"subject": "Invoice", "empty": "", "unicode": "grüße ✓"},
			Tags:     []string{"prod", "eu"},
			State:    routine.StateQueued,
			QueuedAt: epoch,
			ReplayOf: newID(),
			// Labels come back sorted, each once.
			Requires:     routine.Placement{Region: "eu-west", Labels: []string{"ssd", "gpu", "ssd"}},
			TraceID:      "4bf92f3577b34da6a3ce929d0e0e4736",
			ParentSpanID: "00f067aa0ba902b7",
		}
		created, err := b.s.RunCreate(b.ctx, p)
		if err != nil {
			t.Fatalf("RunCreate: %v", err)
		}
		want := &routine.Run{ID: p.ID, Routine: p.Routine, Revision: p.Revision, Trigger: p.Trigger,
			Input: p.Input, Tags: p.Tags, State: p.State, QueuedAt: p.QueuedAt, ReplayOf: p.ReplayOf,
			Requires: routine.Placement{Region: "eu-west", Labels: []string{"gpu", "ssd"}},
			TraceID:  p.TraceID, ParentSpanID: p.ParentSpanID}
		checkRun(t, created, want)
		checkRun(t, b.getRun(t, p.ID), want)

		// The worker is the claim's; the rest comes back as created.
		runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: "host-1/42", Now: at(time.Second), Lease: time.Hour,
			Placement: &routine.Placement{Region: "eu-west", Labels: []string{"gpu", "ssd"}}})
		if err != nil || len(runs) != 1 {
			t.Fatalf("RunClaim = %d runs, %v", len(runs), err)
		}
		claimed := *want
		claimed.State, claimed.Worker, claimed.Region = routine.StateRunning, "host-1/42", "eu-west"
		checkRun(t, runs[0].Run, &claimed)
		want.Revision = "sha256:4567ef01" // the revision that ran
		want.State = routine.StateFailed
		want.Attempt = 2
		want.StartedAt = ptr(at(time.Second))
		want.FinishedAt = ptr(at(time.Minute + 7*time.Microsecond))
		want.Worker = "host-1/42"
		want.Region = "eu-west"
		want.CPUUserMs = 1234
		want.CPUSysMs = 56
		want.MaxRSSKB = 789012
		want.Error = &routine.ErrorPayload{Code: routine.CodeStepFailed, Message: "exit status 3", RunID: p.ID,
			Step: "ticket", Attempt: 2, ExitCode: ptr(3), Retryable: true, StderrTail: "boom\n\tat line 3"}
		want.Usage = routine.Usage{GBSeconds: 1.25, BytesSent: 1 << 40, BytesReceived: 7,
			Tokens: map[string]routine.Tokens{"claude-x": {Input: 1200, Output: 345}, "small": {Input: 1}}}
		if err := b.s.RunUpdate(b.ctx, want); err != nil {
			t.Fatalf("RunUpdate: %v", err)
		}
		checkRun(t, b.getRun(t, p.ID), want)
		list, err := b.s.RunList(b.ctx, &store.RunListParams{})
		if err != nil || len(list) != 1 {
			t.Fatalf("RunList = %d runs, %v", len(list), err)
		}
		checkRun(t, list[0], want)

		// A checkpoint writes the usage as RunUpdate does; zero usage
		// comes back zero.
		want.Usage = routine.Usage{}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{Run: want}); err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		checkRun(t, b.getRun(t, p.ID), want)
	})

	t.Run("CreateDefaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Empty input and tags come back nil, whether given nil or empty.
		run := b.createRun(t, func(p *store.RunCreateParams) {
			p.Input = map[string]string{}
			p.Tags = []string{}
		})
		want := &routine.Run{ID: run.ID, Routine: "r", Revision: "rev1",
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, State: routine.StateQueued, QueuedAt: epoch}
		checkRun(t, run, want)
		checkRun(t, b.getRun(t, run.ID), want)
	})

	t.Run("CreateDuplicateID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		_, err := b.s.RunCreate(b.ctx, &store.RunCreateParams{ID: run.ID, Routine: "other", QueuedAt: epoch})
		if !errors.Is(err, routine.ErrConflict) {
			t.Fatalf("RunCreate of a taken id: got %v, want ErrConflict", err)
		}
		checkRun(t, b.getRun(t, run.ID), run)
	})

	t.Run("CreateInvalidPayload", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		_, err := b.s.RunCreate(b.ctx, &store.RunCreateParams{ID: newID(), Routine: "r", QueuedAt: epoch,
			Trigger: routine.TriggerInfo{Kind: "webhook", Payload: []byte(`{"unterminated`)}})
		if err == nil {
			t.Fatal("RunCreate with a payload that is not JSON: no error")
		}
	})

	t.Run("GetByPrefix", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		b.createRun(t, func(p *store.RunCreateParams) { p.ID = ulid.MustNew(1, ulid.DefaultEntropy()).String() })
		for _, n := range []int{6, 12, len(run.ID)} {
			got, err := b.s.RunGet(b.ctx, run.ID[:n])
			if err != nil {
				t.Fatalf("RunGet(%q): %v", run.ID[:n], err)
			}
			if got.ID != run.ID {
				t.Errorf("RunGet(%q) = %s, want %s", run.ID[:n], got.ID, run.ID)
			}
		}
		if _, err := b.s.RunGet(b.ctx, run.ID[:5]); !errors.Is(err, routine.ErrNotFound) {
			t.Errorf("RunGet of a 5-character prefix: got %v, want ErrNotFound", err)
		}
	})

	t.Run("GetAmbiguousPrefix", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// ULIDs of the same millisecond share their first 10 characters.
		ms := ulid.Timestamp(epoch)
		id1 := ulid.MustNew(ms, ulid.DefaultEntropy()).String()
		id2 := ulid.MustNew(ms, ulid.DefaultEntropy()).String()
		b.createRun(t, func(p *store.RunCreateParams) { p.ID = id1 })
		b.createRun(t, func(p *store.RunCreateParams) { p.ID = id2 })
		if _, err := b.s.RunGet(b.ctx, id1[:8]); !errors.Is(err, routine.ErrConflict) {
			t.Errorf("RunGet of a shared prefix: got %v, want ErrConflict", err)
		}
		common := 0
		for id1[common] == id2[common] {
			common++
		}
		for _, id := range []string{id1, id2} {
			got, err := b.s.RunGet(b.ctx, id[:common+1])
			if err != nil || got.ID != id {
				t.Errorf("RunGet(%q) = %v, %v; want %s", id[:common+1], got, err, id)
			}
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.createRun(t, nil)
		for _, id := range []string{newID(), "", "01"} {
			run, err := b.s.RunGet(b.ctx, id)
			if !errors.Is(err, routine.ErrNotFound) {
				t.Errorf("RunGet(%q) = %v, %v; want ErrNotFound", id, run, err)
			}
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		var want []string
		for _, d := range []time.Duration{3, 1, 4, 1, 5, 9, 2, 6} {
			run := b.createRun(t, func(p *store.RunCreateParams) { p.QueuedAt = at(d * time.Microsecond) })
			want = append(want, run.ID)
		}
		// Newest first; of two runs queued in the same microsecond, the
		// greater id first.
		slices.SortFunc(want, func(x, y string) int {
			return cmpRuns(b.getRun(t, y), b.getRun(t, x))
		})
		runs, err := b.s.RunList(b.ctx, &store.RunListParams{})
		if err != nil {
			t.Fatalf("RunList: %v", err)
		}
		checkIDs(t, runs, want)
	})

	t.Run("ListFilters", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		mk := func(name string, state routine.State, sec int) string {
			return b.createRun(t, func(p *store.RunCreateParams) {
				p.Routine, p.State, p.QueuedAt = name, state, at(time.Duration(sec)*time.Second)
			}).ID
		}
		a1 := mk("a", routine.StateQueued, 1)
		b2 := mk("b", routine.StateRunning, 2)
		a3 := mk("a", routine.StateFailed, 3)
		a4 := mk("a", routine.StateRunning, 4)
		b5 := mk("b", routine.StateFailed, 5)
		for _, tc := range []struct {
			name string
			p    store.RunListParams
			want []string
		}{
			{"none", store.RunListParams{}, []string{b5, a4, a3, b2, a1}},
			{"routine", store.RunListParams{Routine: "a"}, []string{a4, a3, a1}},
			{"one state", store.RunListParams{States: []routine.State{routine.StateRunning}}, []string{a4, b2}},
			{"states", store.RunListParams{States: []routine.State{routine.StateFailed, routine.StateQueued}},
				[]string{b5, a3, a1}},
			{"routine and states", store.RunListParams{Routine: "b",
				States: []routine.State{routine.StateFailed, routine.StateQueued}}, []string{b5}},
			{"unknown routine", store.RunListParams{Routine: "c"}, nil},
			{"limit", store.RunListParams{Limit: 2}, []string{b5, a4}},
			{"limit and filter", store.RunListParams{Routine: "a", Limit: 1}, []string{a4}},
		} {
			runs, err := b.s.RunList(b.ctx, &tc.p)
			if err != nil {
				t.Fatalf("%s: RunList: %v", tc.name, err)
			}
			t.Run(tc.name, func(t *testing.T) { checkIDs(t, runs, tc.want) })
		}
	})

	t.Run("ListDefaultLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		var ids []string
		for i := range 55 {
			ids = append(ids, b.createRun(t, func(p *store.RunCreateParams) { p.QueuedAt = at(time.Duration(i) * time.Second) }).ID)
		}
		slices.Reverse(ids)
		runs, err := b.s.RunList(b.ctx, &store.RunListParams{})
		if err != nil {
			t.Fatalf("RunList: %v", err)
		}
		checkIDs(t, runs, ids[:50])
		runs, err = b.s.RunList(b.ctx, &store.RunListParams{Limit: 100})
		if err != nil {
			t.Fatalf("RunList: %v", err)
		}
		checkIDs(t, runs, ids)
	})

	t.Run("ListEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		runs, err := b.s.RunList(b.ctx, &store.RunListParams{})
		if err != nil || len(runs) != 0 {
			t.Fatalf("RunList of an empty store = %v, %v; want none", runs, err)
		}
	})

	t.Run("UpdateEachField", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for _, tc := range []struct {
			name   string
			before func(r *routine.Run) // applied and saved first, when set
			change func(r *routine.Run)
		}{
			{"state", nil, func(r *routine.Run) { r.State = routine.StateSucceeded }},
			{"attempt", nil, func(r *routine.Run) { r.Attempt = 3 }},
			{"started_at", nil, func(r *routine.Run) { r.StartedAt = ptr(at(time.Hour)) }},
			{"finished_at", nil, func(r *routine.Run) { r.FinishedAt = ptr(at(2 * time.Hour)) }},
			{"revision", nil, func(r *routine.Run) { r.Revision = "rev9" }},
			{"region", nil, func(r *routine.Run) { r.Region = "us-east" }},
			{"cpu_user_ms", nil, func(r *routine.Run) { r.CPUUserMs = 11 }},
			{"cpu_sys_ms", nil, func(r *routine.Run) { r.CPUSysMs = 12 }},
			{"max_rss_kb", nil, func(r *routine.Run) { r.MaxRSSKB = 13 }},
			{"usage", nil, func(r *routine.Run) { r.Usage = routine.Usage{GBSeconds: 0.5} }},
			{"tokens", nil, func(r *routine.Run) {
				r.Usage.Tokens = map[string]routine.Tokens{"m": {Output: 2}}
			}},
			{"error", nil, func(r *routine.Run) {
				r.Error = &routine.ErrorPayload{Code: routine.CodeRunTimeout, Message: "timed out", RunID: r.ID}
			}},
			{"clear times", func(r *routine.Run) {
				r.StartedAt, r.FinishedAt = ptr(at(time.Hour)), ptr(at(2*time.Hour))
			}, func(r *routine.Run) { r.StartedAt, r.FinishedAt = nil, nil }},
			{"clear error", func(r *routine.Run) {
				r.Error = &routine.ErrorPayload{Code: routine.CodeCancelled, Message: "cancelled", RunID: r.ID}
			}, func(r *routine.Run) { r.Error = nil }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				run := b.createRun(t, func(p *store.RunCreateParams) { p.Input = map[string]string{"k": "v"} })
				other := b.createRun(t, nil)
				if tc.before != nil {
					tc.before(run)
					if err := b.s.RunUpdate(b.ctx, run); err != nil {
						t.Fatalf("RunUpdate: %v", err)
					}
				}
				tc.change(run)
				if err := b.s.RunUpdate(b.ctx, run); err != nil {
					t.Fatalf("RunUpdate: %v", err)
				}
				checkRun(t, b.getRun(t, run.ID), run)
				checkRun(t, b.getRun(t, other.ID), other)
			})
		}
	})

	t.Run("UpdateKeepsFixedFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, func(p *store.RunCreateParams) {
			p.Input = map[string]string{"k": "v"}
			p.Tags = []string{"t"}
			p.Trigger.Payload = []byte(`{"x":1}`)
		})
		changed := *run
		changed.Routine = "other"
		changed.Trigger = routine.TriggerInfo{Kind: "cron", Payload: []byte(`{"y":2}`)}
		changed.Input = map[string]string{"k": "changed"}
		changed.Tags = []string{"changed"}
		changed.QueuedAt = at(time.Hour)
		changed.ReplayOf = newID()
		changed.TraceID = "0af7651916cd43dd8448eb211c80319c"
		changed.State = routine.StateRunning
		if err := b.s.RunUpdate(b.ctx, &changed); err != nil {
			t.Fatalf("RunUpdate: %v", err)
		}
		want := *run
		want.State = routine.StateRunning
		checkRun(t, b.getRun(t, run.ID), &want)
	})

	t.Run("UpdateGuardedByWorker", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		b.queue(t, "r", 0)
		claim := func(worker string, now time.Time) *routine.Run {
			t.Helper()
			runs, err := b.s.RunClaim(b.ctx, &store.RunClaimParams{Worker: worker, Now: now, Lease: time.Minute})
			if err != nil || len(runs) != 1 {
				t.Fatalf("RunClaim by %s = %d runs, %v", worker, len(runs), err)
			}
			return runs[0].Run
		}
		first := claim("w1", at(time.Hour))
		// w1's lease expires; w2 takes the run over.
		second := claim("w2", at(time.Hour+time.Minute))
		first.State = routine.StateSucceeded
		if err := b.s.RunUpdate(b.ctx, first); !errors.Is(err, routine.ErrConflict) {
			t.Fatalf("RunUpdate by the worker that lost the run: %v, want ErrConflict", err)
		}
		step := &routine.StepRun{RunID: first.ID, ID: "a", Phase: routine.PhaseMain, Kind: "run", State: routine.StateSucceeded}
		for _, p := range []*store.CheckpointParams{
			{Run: first, Steps: []*routine.StepRun{step}},
			{RunID: first.ID, Holder: "w1", Steps: []*routine.StepRun{step}},
		} {
			if err := b.s.Checkpoint(b.ctx, p); !errors.Is(err, routine.ErrConflict) {
				t.Fatalf("Checkpoint by the worker that lost the run: %v, want ErrConflict", err)
			}
		}
		b.listSteps(t, first.ID, 0)
		if got := b.getRun(t, first.ID); got.State != routine.StateRunning || got.Worker != "w2" {
			t.Fatalf("run after the lost writes: %s by %s, want running by w2", got.State, got.Worker)
		}
		if err := b.s.Checkpoint(b.ctx, &store.CheckpointParams{RunID: second.ID, Holder: "w2", Steps: []*routine.StepRun{step}}); err != nil {
			t.Fatalf("Checkpoint by the holder: %v", err)
		}
		second.State = routine.StateSucceeded
		if err := b.s.RunUpdate(b.ctx, second); err != nil {
			t.Fatalf("RunUpdate by the holder: %v", err)
		}
	})

	t.Run("UpdateNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		err := b.s.RunUpdate(b.ctx, &routine.Run{ID: newID(), State: routine.StateRunning, QueuedAt: epoch})
		if !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("RunUpdate of a missing run: got %v, want ErrNotFound", err)
		}
	})
}

// cmpRuns orders runs oldest first, then by id.
func cmpRuns(x, y *routine.Run) int {
	if c := x.QueuedAt.Compare(y.QueuedAt); c != 0 {
		return c
	}
	switch {
	case x.ID < y.ID:
		return -1
	case x.ID > y.ID:
		return 1
	}
	return 0
}

func checkIDs(t *testing.T, runs []*routine.Run, want []string) {
	t.Helper()
	var got []string
	for _, r := range runs {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got runs\n%v\nwant\n%v", got, want)
	}
}

func exerciseRunFilters(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Each", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		mk := func(name, trigger string, state routine.State, sec int, tags ...string) string {
			return b.createRun(t, func(p *store.RunCreateParams) {
				p.Routine, p.Trigger.Kind, p.State, p.QueuedAt, p.Tags = name, trigger, state, at(time.Duration(sec)*time.Second), tags
			}).ID
		}
		a1 := mk("a", "cron", routine.StateQueued, 1, "prod", "eu")
		b2 := mk("b", "webhook", routine.StateRunning, 2, "prod")
		a3 := mk("a", "webhook", routine.StateFailed, 3)
		a4 := mk("a", "cron", routine.StateSucceeded, 4, "eu", "eu")
		b5 := mk("b", "cron", routine.StateFailed, 5, "dev")
		a6 := mk("a", "manual", routine.StateSucceeded, 6, "prod")
		for _, tc := range []struct {
			name string
			p    store.RunListParams
			want []string
		}{
			{"trigger", store.RunListParams{Trigger: "cron"}, []string{b5, a4, a1}},
			{"unknown trigger", store.RunListParams{Trigger: "email"}, nil},
			{"tag", store.RunListParams{Tag: "prod"}, []string{a6, b2, a1}},
			{"tag given twice on a run", store.RunListParams{Tag: "eu"}, []string{a4, a1}},
			{"unknown tag", store.RunListParams{Tag: "pro"}, nil},
			{"since", store.RunListParams{Since: at(4 * time.Second)}, []string{a6, b5, a4}},
			{"until", store.RunListParams{Until: at(3 * time.Second)}, []string{b2, a1}},
			{"since and until", store.RunListParams{Since: at(2 * time.Second), Until: at(5 * time.Second)}, []string{a4, a3, b2}},
			{"id prefix", store.RunListParams{IDPrefix: a3[:20]}, []string{a3}},
			{"whole id", store.RunListParams{IDPrefix: a3}, []string{a3}},
			{"no such prefix", store.RunListParams{IDPrefix: "ZZZZ"}, nil},
			{"tag and routine", store.RunListParams{Tag: "prod", Routine: "a"}, []string{a6, a1}},
			{"tag, state and time", store.RunListParams{Tag: "prod", States: []routine.State{routine.StateSucceeded, routine.StateQueued},
				Since: at(time.Second), Until: at(6 * time.Second)}, []string{a1}},
			{"trigger, routine and state", store.RunListParams{Trigger: "cron", Routine: "a",
				States: []routine.State{routine.StateSucceeded}}, []string{a4}},
			{"tag and limit", store.RunListParams{Tag: "prod", Limit: 2}, []string{a6, b2}},
			{"before", store.RunListParams{Before: a4}, []string{a3, b2, a1}},
			{"before with a tag", store.RunListParams{Before: a6, Tag: "eu"}, []string{a4, a1}},
			{"before the oldest", store.RunListParams{Before: a1}, nil},
		} {
			runs, err := b.s.RunList(b.ctx, &tc.p)
			if err != nil {
				t.Fatalf("%s: RunList: %v", tc.name, err)
			}
			t.Run(tc.name, func(t *testing.T) { checkIDs(t, runs, tc.want) })
		}
	})

	t.Run("PagesWalkEveryRunOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		// Ids made in an order of their own, times that repeat: pages
		// follow the list's order (queued_at, then id), not the ids'.
		var all, tagged []*routine.Run
		for i := range 41 {
			run := b.createRun(t, func(p *store.RunCreateParams) {
				p.QueuedAt = at(time.Duration((i*17)%13) * time.Millisecond)
				if i%3 != 0 {
					p.Tags = []string{"t"}
				}
			})
			all = append(all, run)
			if i%3 != 0 {
				tagged = append(tagged, run)
			}
		}
		for _, tc := range []struct {
			name string
			p    store.RunListParams
			want []*routine.Run
		}{
			{"all", store.RunListParams{Limit: 4}, all},
			{"tagged", store.RunListParams{Limit: 5, Tag: "t"}, tagged},
		} {
			t.Run(tc.name, func(t *testing.T) {
				slices.SortFunc(tc.want, func(x, y *routine.Run) int { return cmpRuns(y, x) })
				var want, got []string
				for _, r := range tc.want {
					want = append(want, r.ID)
				}
				p := tc.p
				for page := 0; ; page++ {
					runs, err := b.s.RunList(b.ctx, &p)
					if err != nil {
						t.Fatalf("page %d: %v", page, err)
					}
					if len(runs) == 0 || page > len(want) {
						break
					}
					for _, r := range runs {
						got = append(got, r.ID)
					}
					p.Before = runs[len(runs)-1].ID
				}
				if !slices.Equal(got, want) {
					t.Errorf("pages gave\n%v\nwant\n%v", got, want)
				}
			})
		}
	})
}
