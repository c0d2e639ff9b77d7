package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

type testBundle struct {
	store *sqlite.Store
	clock *clock.Virtual
	queue *scheduler.Queue
}

// listeners are the routines of the tests: alert dedupes cpu.alert by
// host for a minute, audit hears cpu.alert (twice: one run all the same)
// with no dedupe, page keys by host with the default window, and disk
// hears another event.
func listeners() []*routine.Routine {
	on := func(name, dedupe string, window time.Duration) routine.Trigger {
		return routine.Trigger{Event: &routine.EventTrigger{Name: name, Dedupe: dedupe, Window: routine.Duration(window)}}
	}
	return []*routine.Routine{
		{Name: "alert", Triggers: []routine.Trigger{on("cpu.alert", "{{ event.host }}", time.Minute)}},
		{Name: "audit", Triggers: []routine.Trigger{on("cpu.alert", "", 0), on("cpu.alert", "", 0)}},
		{Name: "page", Triggers: []routine.Trigger{on("page.me", "{{ event.host }}", 0)}},
		{Name: "disk", Triggers: []routine.Trigger{on("disk.full", "", 0)}},
	}
}

// setup returns a publisher to the listeners through a queue on a SQLite
// store, timed by a virtual clock.
func setup(t *testing.T) (*events.Publisher, *testBundle) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &testBundle{store: st, clock: clock.NewVirtual(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
	b.queue = scheduler.NewQueue(st, b.clock, nil)
	return events.New(scheduler.NewCatalog(listeners()), b.queue, nil), b
}

// publish publishes an event that must be accepted, and maps its runs by
// routine.
func publish(t *testing.T, p *events.Publisher, ev *events.Event) map[string]api.EventRun {
	t.Helper()
	res, err := p.Publish(t.Context(), ev)
	if err != nil {
		t.Fatalf("publish %s: %v", ev.Name, err)
	}
	if res.Event != ev.Name || len(res.RunIDs) != len(res.Runs) {
		t.Fatalf("result %+v", res)
	}
	runs := map[string]api.EventRun{}
	for i, r := range res.Runs {
		if res.RunIDs[i] != r.RunID {
			t.Fatalf("run_ids %v do not match runs %+v", res.RunIDs, res.Runs)
		}
		runs[r.Routine] = r
	}
	return runs
}

func (b *testBundle) runs(t *testing.T, name string) []*routine.Run {
	t.Helper()
	runs, err := b.store.RunList(t.Context(), &store.RunListParams{Routine: name})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestPublishFansOutAndDedupes(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	if n := len(p.Listeners("cpu.alert", "")); n != 2 {
		t.Fatalf("%d listeners of cpu.alert, want 2", n)
	}
	first := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web1","cpu":97}`)})
	if len(first) != 2 || first["alert"].Deduplicated || first["audit"].Deduplicated {
		t.Fatalf("first: %+v", first)
	}
	run, err := b.store.RunGet(t.Context(), first["alert"].RunID)
	if err != nil || run.State != routine.StateQueued || run.Trigger.Kind != events.TriggerKind || string(run.Trigger.Payload) != `{"host":"web1","cpu":97}` {
		t.Fatalf("alert's run: %+v %v", run, err)
	}
	// Inside alert's minute the same host folds; audit, with no dedupe,
	// gets a run each time; another host is another key.
	b.clock.Advance(59 * time.Second)
	second := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web1","cpu":98}`)})
	if !second["alert"].Deduplicated || second["alert"].RunID != first["alert"].RunID || second["audit"].Deduplicated {
		t.Fatalf("second: %+v, first %+v", second, first)
	}
	if other := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web2"}`)}); other["alert"].Deduplicated {
		t.Fatalf("another host folded: %+v", other)
	}
	// The emitter's key overrides the expression.
	if forced := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web3"}`), DedupeKey: "web1"}); forced["alert"].RunID != first["alert"].RunID {
		t.Fatalf("dedupe web1: %+v", forced)
	}
	// The window counts from the first run.
	b.clock.Advance(2 * time.Second)
	if third := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web1"}`)}); third["alert"].Deduplicated {
		t.Fatalf("after the window: %+v", third)
	}
	if got := len(b.runs(t, "alert")); got != 3 {
		t.Fatalf("%d runs of alert, want 3 (web1, web2, web1 after the window)", got)
	}
	if got := len(b.runs(t, "audit")); got != 5 {
		t.Fatalf("%d runs of audit, want one per event (5)", got)
	}
}

func TestPublishWindows(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	// page sets no window: a key folds for DefaultDedupeWindow.
	first := publish(t, p, &events.Event{Name: "page.me", Payload: json.RawMessage(`{"host":"db1"}`)})
	b.clock.Advance(events.DefaultDedupeWindow - time.Second)
	if again := publish(t, p, &events.Event{Name: "page.me", Payload: json.RawMessage(`{"host":"db1"}`)}); again["page"].RunID != first["page"].RunID {
		t.Fatalf("inside the default window: %+v", again)
	}
	b.clock.Advance(2 * time.Second)
	late := publish(t, p, &events.Event{Name: "page.me", Payload: json.RawMessage(`{"host":"db1"}`), DedupeWindow: time.Hour})
	if late["page"].Deduplicated {
		t.Fatalf("after the default window: %+v", late)
	}
	// The emitter's window overrides the default.
	b.clock.Advance(30 * time.Minute)
	if again := publish(t, p, &events.Event{Name: "page.me", Payload: json.RawMessage(`{"host":"db1"}`)}); again["page"].RunID != late["page"].RunID {
		t.Fatalf("inside the emitter's hour: %+v", again)
	}
}

func TestPublishUnheardAndUnkeyed(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	// Nobody listens: no runs, and lists that are [] in JSON.
	res, err := p.Publish(t.Context(), &events.Event{Name: "nobody.cares"})
	if err != nil || len(res.Runs) != 0 || res.Runs == nil || res.RunIDs == nil || len(p.Listeners("nobody.cares", "")) != 0 {
		t.Fatalf("unheard: %+v %v", res, err)
	}
	// No data is {}; a key field missing runs alert undeduplicated, each time.
	a := publish(t, p, &events.Event{Name: "cpu.alert"})
	c := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(" \n")})
	if a["alert"].Deduplicated || c["alert"].Deduplicated || a["alert"].RunID == c["alert"].RunID {
		t.Fatalf("unkeyed: %+v, %+v", a, c)
	}
	run, err := b.store.RunGet(t.Context(), c["alert"].RunID)
	if err != nil || string(run.Trigger.Payload) != `{}` {
		t.Fatalf("empty data: %+v %v", run, err)
	}
}

// TestPublishRefuses: a name that is a path, a header or a line, and data
// that is not JSON or too large, are refused with what to do, and make
// nothing.
func TestPublishRefuses(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	for _, tc := range []struct {
		ev   events.Event
		want string
	}{
		{events.Event{Name: "../cpu.alert"}, `event name "../cpu.alert" must be 1 to 200 letters, digits and _ . : -`},
		{events.Event{Name: "cpu.alert\r\nX-Injected: yes"}, `event name "cpu.alert\r\nX-Injected: yes" must be`},
		{events.Event{Name: ""}, `event name "" must be`},
		{events.Event{Name: strings.Repeat("a", routine.MaxEventNameLen+1)}, "must be 1 to 200"},
		{events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{nope`)}, "the event data must be JSON"},
		{events.Event{Name: "cpu.alert", Payload: json.RawMessage(`"` + strings.Repeat("x", events.MaxPayload) + `"`)}, "more than the 1024 KiB an event may carry"},
	} {
		if _, err := p.Publish(t.Context(), &tc.ev); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: %v, want %q", tc.ev.Name, err, tc.want)
		}
	}
	if n := len(b.runs(t, "")); n != 0 {
		t.Fatalf("%d runs made by refused events", n)
	}
}

// TestPublishHostileDataStaysData: values that look like templates, paths
// or shell are the event's data: stored as sent, and a dedupe key made of
// them is their text, never rendered again.
func TestPublishHostileDataStaysData(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	hostile := `{"host":"{{ event.cpu }}","cpu":"1","path":"../../etc/passwd","sh":"$(touch pwned)\r\nX: y"}`
	first := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(hostile)})
	run, err := b.store.RunGet(t.Context(), first["alert"].RunID)
	if err != nil || string(run.Trigger.Payload) != hostile {
		t.Fatalf("stored payload %q, %v", run.Trigger.Payload, err)
	}
	// Were the host rendered again, its key would be "1": the same as
	// host 1's, and another for cpu 2.
	if one := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"1"}`)}); one["alert"].Deduplicated {
		t.Fatalf("host 1 folded into the hostile event's run: %+v", one)
	}
	again := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"{{ event.cpu }}","cpu":"2"}`)})
	if again["alert"].RunID != first["alert"].RunID {
		t.Fatalf("the same host text made another run: %+v, first %+v", again, first)
	}
}

// TestEmitInProcess: an emit step's emission becomes the event, its data
// the payload, its dedupe the key.
func TestEmitInProcess(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	res, err := p.Emit(t.Context(), &stepkind.Emission{Event: "page.me", Data: map[string]string{"host": "db9"}, Dedupe: "k", Token: "ignored"})
	if err != nil || len(res.Runs) != 1 {
		t.Fatalf("emit: %+v %v", res, err)
	}
	again, err := p.Emit(t.Context(), &stepkind.Emission{Event: "page.me", Dedupe: "k"})
	if err != nil || !again.Runs[0].Deduplicated || again.Runs[0].RunID != res.Runs[0].RunID {
		t.Fatalf("same key: %+v %v", again, err)
	}
	run, err := b.store.RunGet(t.Context(), res.Runs[0].RunID)
	if err != nil || string(run.Trigger.Payload) != `{"host":"db9"}` {
		t.Fatalf("run %+v %v", run, err)
	}
	if _, err := p.Emit(t.Context(), &stepkind.Emission{Event: "page/me"}); err == nil || !strings.Contains(err.Error(), "must be 1 to 200") {
		t.Fatalf("bad name: %v", err)
	}
}

// TestPublishLeavesOutRefusedListeners: a listener the queue refuses (a
// spent budget) gets no run, the others do; an event every listener of
// which is refused fails with the refusal.
func TestPublishLeavesOutRefusedListeners(t *testing.T) {
	t.Parallel()
	p, b := setup(t)
	spent := errors.New("budget spent")
	b.queue.Admit(func(r *routine.Routine) error {
		if r.Name == "alert" || r.Name == "page" {
			return spent
		}
		return nil
	})
	runs := publish(t, p, &events.Event{Name: "cpu.alert", Payload: json.RawMessage(`{"host":"web1"}`)})
	if _, ok := runs["alert"]; ok || len(runs) != 1 || runs["audit"].RunID == "" {
		t.Fatalf("runs %+v, want audit's alone", runs)
	}
	_, err := p.Publish(t.Context(), &events.Event{Name: "page.me", Payload: json.RawMessage(`{"host":"web1"}`)})
	if !errors.Is(err, scheduler.ErrRefused) || !errors.Is(err, spent) {
		t.Fatalf("every listener refused: %v, want the refusal", err)
	}
}

// An emit step's event reaches the routines of the emitting routine's
// namespace only: a team's routine does not start another team's, nor
// the operators'; a routine of the default namespace (every routine of a
// local daemon) reaches the default namespace's.
func TestEmitKeepsToTheNamespace(t *testing.T) {
	t.Parallel()
	on := routine.Trigger{Event: &routine.EventTrigger{Name: "deploy"}}
	catalog := scheduler.NewCatalog([]*routine.Routine{
		{Name: "ops-deploy", Triggers: []routine.Trigger{on}},
		{Name: "a-deploy", Namespace: "team-a", Triggers: []routine.Trigger{on}},
		{Name: "b-deploy", Namespace: "team-b", Triggers: []routine.Trigger{on}},
	})
	_, b := setup(t)
	p := events.New(catalog, b.queue, nil)
	for ns, want := range map[string]string{"team-a": "a-deploy", "team-b": "b-deploy", "": "ops-deploy"} {
		res, err := p.Emit(t.Context(), &stepkind.Emission{Event: "deploy", Namespace: ns})
		if err != nil || len(res.Runs) != 1 || res.Runs[0].Routine != want {
			t.Errorf("emit from namespace %q: %+v, %v; want one run, of %s", ns, res, err, want)
		}
	}
}
