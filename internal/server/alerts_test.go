package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func TestListAlerts(t *testing.T) {
	t.Parallel()
	b := setupRemote(t, false)
	for q, want := range map[string]string{
		"limit=0":      "limit=0: want a number from 1 to 10000",
		"since=monday": "since=monday: want a duration back from now, such as 24h or 7d, or an RFC 3339 time",
		"since=-1h":    "since=-1h: want a duration",
		"limit=100000": "limit=100000: want a number from 1 to 10000",
	} {
		code, body := b.call(t, "GET", "/v1/alerts?"+q, "", true)
		if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), want) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	if code, body := b.call(t, "GET", "/v1/alerts", "", true); code != http.StatusOK || body != "[]\n" {
		t.Fatalf("no records: %d %q", code, body)
	}
	now := time.Now().UTC()
	for i, r := range []string{"a", "b"} {
		rec := &routine.AlertRecord{When: "runs < 1", Metric: "runs", Over: routine.Duration(time.Hour), At: now.Add(time.Duration(i-3) * time.Hour), StartedAt: now}
		if _, won, err := b.st.AlertTransition(t.Context(), &store.AlertTransitionParams{Routine: r, Alert: "idle", From: routine.AlertOK, To: routine.AlertFiring, Record: rec}); err != nil || !won {
			t.Fatal(won, err)
		}
	}
	for q, want := range map[string][]string{
		"":            {"b", "a"},
		"?routine=a":  {"a"},
		"?since=150m": {"b"},
		"?since=" + now.Add(-4*time.Hour).Format(time.RFC3339): {"b", "a"},
		"?limit=1": {"b"},
	} {
		code, body := b.call(t, "GET", "/v1/alerts"+q, "", true)
		var list []*routine.AlertRecord
		if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		var got []string
		for _, rec := range list {
			got = append(got, rec.Routine)
			if rec.Deliveries == nil || rec.Over != routine.Duration(time.Hour) {
				t.Errorf("%s: record %+v: want deliveries [] and over 1h", q, rec)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET /v1/alerts%s = %v, want %v", q, got, want)
		}
	}
}
