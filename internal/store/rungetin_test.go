package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// A run of a routine the caller does not see is not found by its id, and
// neither makes a prefix ambiguous nor is named in the error of one that
// is.
func TestRunGetIn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, name := range map[string]string{
		"01AAAAAAAAAAAAAAAAAAAAAAA1": "mine", "01AAAAAAAAAAAAAAAAAAAAAAB2": "theirs",
		"01BBBBBBBBBBBBBBBBBBBBBBB1": "mine", "01BBBBBBBBBBBBBBBBBBBBBBB2": "mine", "01BBBBBBBBBBBBBBBBBBBBBBC3": "theirs",
	} {
		if _, err := st.RunCreate(ctx, &store.RunCreateParams{ID: id, Routine: name,
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	mine := []string{"mine"}
	for _, c := range []struct {
		id, want, err string
	}{
		{"01AAAAA", "01AAAAAAAAAAAAAAAAAAAAAAA1", ""},                             // ambiguous for RunGet, not among mine
		{"01AAAAAAAAAAAAAAAAAAAAAAB2", "", "not found"},                           // theirs, whole
		{"01AAAAAAAAAAAAAAAAAAAAAAB", "", "not found"},                            // theirs, by a unique prefix
		{"01BBBBB", "", "01BBBBBBBBBBBBBBBBBBBBBBB1, 01BBBBBBBBBBBBBBBBBBBBBBB2"}, // ambiguous among mine, naming mine only
		{"01BBBBBBBBBBBBBBBBBBBBBBB2", "01BBBBBBBBBBBBBBBBBBBBBBB2", ""},
	} {
		run, err := store.RunGetIn(ctx, st, c.id, mine)
		switch {
		case c.want != "" && (err != nil || run.ID != c.want):
			t.Errorf("RunGetIn(%s) = %v, %v; want %s", c.id, run, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "C3")):
			t.Errorf("RunGetIn(%s) = %v, %v; want an error saying %q, naming no run of theirs", c.id, run, err, c.err)
		}
	}
	var ambiguous *routine.AmbiguousIDError
	if _, err := store.RunGetIn(ctx, st, "01AAAAA", nil); !errors.As(err, &ambiguous) {
		t.Errorf("RunGetIn of any routine's = %v; want ambiguous, as RunGet", err)
	}
}
