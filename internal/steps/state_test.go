package steps

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

type stateBundle struct {
	store  *sqlite.Store
	now    time.Time // the clock of every execution
	stdout strings.Builder
}

func setupState(t *testing.T) *stateBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &stateBundle{store: st, now: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)}
}

// exec runs a state action of routine name and returns its outputs.
func (b *stateBundle) exec(t *testing.T, name string, a *routine.StateAction) (routine.Outputs, error) {
	t.Helper()
	res, err := StateKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "state", Attempt: 1,
		Action:  &routine.Action{State: a},
		Routine: name,
		State:   b.store,
		Now:     func() time.Time { return b.now },
		Stdout:  &b.stdout,
	})
	if err != nil {
		return nil, err
	}
	return res.Outputs, nil
}

// want runs a and fails unless it succeeds with exactly the outputs want.
func (b *stateBundle) want(t *testing.T, name string, a *routine.StateAction, want routine.Outputs) {
	t.Helper()
	got, err := b.exec(t, name, a)
	if err != nil {
		t.Fatalf("%+v: %v", *a, err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%+v: outputs %v, want %v", *a, got, want)
	}
}

func TestStateGetPutDelete(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	b.want(t, "r", &routine.StateAction{Get: "count"}, routine.Outputs{"value": "", "found": "false"})
	b.want(t, "r", &routine.StateAction{Put: "count", Value: "1"}, routine.Outputs{"value": "1", "found": "false"})
	b.want(t, "r", &routine.StateAction{Get: "count"}, routine.Outputs{"value": "1", "found": "true"})
	b.want(t, "r", &routine.StateAction{Put: "count", Value: "2"}, routine.Outputs{"value": "2", "found": "true"})
	b.want(t, "r", &routine.StateAction{Get: "count"}, routine.Outputs{"value": "2", "found": "true"})
	b.want(t, "r", &routine.StateAction{Delete: "count"}, routine.Outputs{"found": "true"})
	b.want(t, "r", &routine.StateAction{Delete: "count"}, routine.Outputs{"found": "false"})
	b.want(t, "r", &routine.StateAction{Get: "count"}, routine.Outputs{"value": "", "found": "false"})
	b.want(t, "r", &routine.StateAction{Put: "count", Value: "3", TTL: routine.Duration(time.Hour)}, routine.Outputs{"value": "3", "found": "false"})
	want := `count is not set
count = 1
count = 1
count = 2
count = 2
count deleted
count was not set
count is not set
count = 3, expires in 1h0m0s
`
	if b.stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", b.stdout.String(), want)
	}
}

func TestStateTTL(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	start := b.now
	b.want(t, "r", &routine.StateAction{Put: "k", Value: "v", TTL: routine.Duration(time.Minute)}, routine.Outputs{"value": "v", "found": "false"})
	b.now = start.Add(59 * time.Second)
	b.want(t, "r", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "v", "found": "true"})
	b.now = start.Add(time.Minute)
	b.want(t, "r", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "", "found": "false"})
	// A put without ttl keeps the key for good.
	b.want(t, "r", &routine.StateAction{Put: "k", Value: "w"}, routine.Outputs{"value": "w", "found": "false"})
	b.now = start.Add(1000 * time.Hour)
	b.want(t, "r", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "w", "found": "true"})
}

func TestStateNamespaceIsTheRoutine(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	b.want(t, "a", &routine.StateAction{Put: "k", Value: "of a"}, routine.Outputs{"value": "of a", "found": "false"})
	b.want(t, "b", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "", "found": "false"})
	b.want(t, "b", &routine.StateAction{Delete: "k"}, routine.Outputs{"found": "false"})
	b.want(t, "a", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "of a", "found": "true"})
}

func TestStateLimits(t *testing.T) {
	t.Parallel()
	b := setupState(t)
	long := strings.Repeat("k", routine.MaxStateKeyLen)
	b.want(t, "r", &routine.StateAction{Put: long, Value: strings.Repeat("v", routine.MaxStateValueBytes)},
		routine.Outputs{"value": strings.Repeat("v", routine.MaxStateValueBytes), "found": "false"})
	b.want(t, "r", &routine.StateAction{Get: "a-Z_0.9:x/y"}, routine.Outputs{"value": "", "found": "false"})
	for _, tt := range []struct {
		action routine.StateAction
		err    string
	}{
		{routine.StateAction{Get: long + "k"}, "must be 1 to 200 letters"},
		{routine.StateAction{Delete: "cpu load"}, `state key "cpu load" must be`},
		{routine.StateAction{Get: "é"}, "must be 1 to 200 letters"},
		{routine.StateAction{Put: "k", Value: strings.Repeat("v", routine.MaxStateValueBytes+1)}, "more than the 64 KiB"},
		{routine.StateAction{Value: "rendered key was empty"}, "names no key"},
	} {
		if _, err := b.exec(t, "r", &tt.action); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%.40v: err %v, want %q", tt.action, err, tt.err)
		}
	}
	// A failed put leaves the value as it was.
	b.want(t, "r", &routine.StateAction{Get: "k"}, routine.Outputs{"value": "", "found": "false"})
}

func TestShown(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                   "(empty)",
		"42":                                 "42",
		"a\nb":                               "(3 bytes)",
		strings.Repeat("x", shownValueLen):   strings.Repeat("x", shownValueLen),
		strings.Repeat("x", shownValueLen+1): "(81 bytes)",
	} {
		if got := shown(in); got != want {
			t.Errorf("shown(%.20q) = %s, want %s", in, got, want)
		}
	}
}

func TestStateWithoutStore(t *testing.T) {
	t.Parallel()
	_, err := StateKind{}.Execute(t.Context(), &stepkind.Execution{Action: &routine.Action{State: &routine.StateAction{Get: "k"}}})
	if err == nil || !strings.Contains(err.Error(), "no store") {
		t.Fatalf("err %v, want one that says there is no store", err)
	}
}
