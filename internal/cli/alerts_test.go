package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// TestAlertsLists writes the records of a firing and a clearing to a
// project's store, and lists them as a table and as JSON.
func TestAlertsLists(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: nightly\nsteps:\n  - id: work\n    run: echo hi\n")
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	fired := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	for _, tr := range []struct {
		from, to string
		at       time.Time
		value    float64
		ds       []routine.AlertDelivery
	}{
		{routine.AlertOK, routine.AlertFiring, fired, 3.25, []routine.AlertDelivery{{Target: "slack", OK: true}, {Target: "webhook", Error: "http: POST https://hooks.example.com/… → 503 Service Unavailable"}}},
		// Its clearing waits for the firing's notifications to be sent.
		{routine.AlertFiring, routine.AlertOK, fired.Add(90 * time.Minute), 1.5, nil},
	} {
		rec := &routine.AlertRecord{When: "p95_latency > 2s", Metric: "p95_latency", Value: tr.value, Threshold: 2, Runs: 12,
			Over: routine.Duration(15 * time.Minute), At: tr.at, StartedAt: fired, Deliveries: []routine.AlertDelivery{{Target: "slack"}, {Target: "webhook"}}}
		e, won, err := st.AlertTransition(t.Context(), &store.AlertTransitionParams{Routine: "nightly", Alert: "p95_latency > 2s", From: tr.from, To: tr.to, Record: rec})
		if err != nil || !won {
			t.Fatal(won, err)
		}
		if tr.ds == nil {
			continue
		}
		claimed, err := st.AlertClaim(t.Context(), &store.AlertClaimParams{Holder: "test", Now: tr.at, Lease: time.Minute})
		if err != nil || len(claimed) != 1 {
			t.Fatal(claimed, err)
		}
		if err := st.AlertDelivered(t.Context(), &store.AlertDeliveredParams{ID: e.ID, Holder: "test", Deliveries: tr.ds, NextTry: tr.at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stamp := func(t time.Time) string { return t.Format("2006-01-02 15:04:05") }
	res := routines(t, dir, "alerts")
	want := strings.Join([]string{
		"TIME                 ROUTINE  ALERT             STATE    VALUE                     OVER  NOTIFIED",
		stamp(fired.Add(90*time.Minute)) + "  nightly  p95_latency > 2s  cleared  1.5s (p95_latency > 2s)   15m   slack pending, webhook pending",
		stamp(fired) + "  nightly  p95_latency > 2s  firing   3.25s (p95_latency > 2s)  15m   slack ok, webhook failed: http: POST https://hooks.example.com/… → 503 Service Unavai…, trying again",
		"",
	}, "\n")
	if res.code != 0 || res.stdout != want {
		t.Fatalf("alerts = %d\n%s\nwant\n%s\nstderr: %s", res.code, res.stdout, want, res.stderr)
	}
	res = routines(t, dir, "alerts", "--since", "1h", "-o", "json")
	var list []*routine.AlertRecord
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil || res.code != 0 {
		t.Fatalf("alerts -o json = %d, %q: %v", res.code, res.stdout, err)
	}
	if len(list) != 1 || list[0].State != routine.AlertOK || !list[0].StartedAt.Equal(fired) || len(list[0].Deliveries) != 2 || list[0].Deliveries[0].Target != "slack" {
		t.Errorf("alerts --since 1h -o json = %s; want the clearing alone", res.stdout)
	}
	if res := routines(t, dir, "alerts", "--routine", "other"); res.code != 0 || res.stdout != "no alert fired in "+dir+"\n" {
		t.Errorf("alerts --routine other = %d %q", res.code, res.stdout)
	}
}
