package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPrunePlans: each batch of retention walks an index, never the runs.
func TestPrunePlans(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, query string
		args        []any
		want        string
	}{
		{"ended", endedBeforeSQL, []any{1, 2, 3}, "runs_ended"},
		{"log runs", logRunsSQL, []any{1, "", 2, 3}, "runs_ended"},
		{"log count", logCountSQL, []any{1, "", 2, 0}, "runs_ended"},
		{"over count", olderThanKeptSQL, []any{1, 2, 3, "r", "id"}, "runs_routine_queued_at"},
		{"replayed", replayedBeforeSQL, []any{1, 2, 3}, "runs_replay_of"},
	} {
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "; ")
		if !strings.Contains(all, tc.want) || strings.Contains(all, "SCAN runs;") || strings.HasSuffix(all, "SCAN runs") {
			t.Errorf("%s: plan %q, want a walk of %s", tc.name, all, tc.want)
		}
		t.Logf("%s: %s", tc.name, all)
	}
}
