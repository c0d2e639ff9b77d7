package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// serveEvents serves the API over a SQLite store, with one routine,
// alert, that listens with trig.
func serveEvents(t *testing.T, trig *routine.EventTrigger) (*httptest.Server, *sqlite.Store, *scheduler.Queue) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alert := &routine.Routine{Name: "alert", Triggers: []routine.Trigger{{Event: trig}}}
	q := scheduler.NewQueue(st, nil, nil)
	ts := httptest.NewServer(server.New(server.Config{Store: st, Queue: q, Routines: scheduler.NewCatalog([]*routine.Routine{alert})}))
	t.Cleanup(ts.Close)
	return ts, st, q
}

func TestEventConcurrentDedupe(t *testing.T) {
	t.Parallel()
	ts, st, q := serveEvents(t, &routine.EventTrigger{Name: "cpu.alert", Dedupe: "{{ event.host }}"})
	var wakes atomic.Int32
	q.OnQueued(func() { wakes.Add(1) })

	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(ts.URL+"/v1/events/cpu.alert", "application/json", strings.NewReader(`{"host":"web1"}`))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var res api.EventResult
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 202 || len(res.Runs) != 1 {
				t.Errorf("%d %+v %v", resp.StatusCode, res, err)
				return
			}
			ids[i] = res.Runs[0].RunID
		})
	}
	wg.Wait()
	for i := range n {
		if ids[i] != ids[0] {
			t.Fatalf("emit %d got run %s, emit 0 run %s", i, ids[i], ids[0])
		}
	}
	runs, err := st.RunList(t.Context(), &store.RunListParams{Routine: "alert"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("%d runs (%v), want 1", len(runs), err)
	}
	if wakes.Load() != 1 {
		t.Errorf("%d wake-ups, want 1 (one run created)", wakes.Load())
	}
	// A missing key field does not drop the event: it runs undeduplicated.
	resp, err := http.Post(ts.URL+"/v1/events/cpu.alert", "application/json", strings.NewReader(`{"cpu":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res api.EventResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || len(res.Runs) != 1 || res.Runs[0].RunID == ids[0] {
		t.Fatalf("event without the key field: %+v %v", res, err)
	}
}

// TestEventRefusesHostileNames: a name that would be a path or a header
// line is refused with 400 and what a name may hold, and makes no run,
// even for a routine that listens to what it would clean to.
func TestEventRefusesHostileNames(t *testing.T) {
	t.Parallel()
	ts, st, _ := serveEvents(t, &routine.EventTrigger{Name: "cpu.alert"})
	for _, name := range []string{"..%2Fcpu.alert", "cpu.alert%0D%0AX-Injected:%20yes", "cpu%20alert", "x%2F..%2F..%2Froutines%2Falert%2Fruns"} {
		resp, err := http.Post(ts.URL+"/v1/events/"+name, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(e.Error, "must be 1 to 200 letters, digits and _ . : -, such as cpu.alert") {
			t.Errorf("%s: %d %q", name, resp.StatusCode, e.Error)
		}
	}
	if runs, err := st.RunList(t.Context(), &store.RunListParams{}); err != nil || len(runs) != 0 {
		t.Fatalf("%d runs (%v), want none", len(runs), err)
	}
}
