package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/trigger"
)

type countWaker struct{ n int }

func (w *countWaker) Wake() { w.n++ }

// A message fetched again (the cursor was not saved before a crash) folds
// into the run its first firing queued.
func TestEnqueueDedupedFoldsARefetchedMessage(t *testing.T) {
	t.Parallel()
	st, err := (&globals{deps: Deps{Stderr: io.Discard}}).openStore(t.Context(), project.Project{Dir: t.TempDir()}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &routine.Routine{Name: "support-ack", Revision: "rev1"}
	wk := &countWaker{}
	log := slog.New(slog.DiscardHandler)
	fire := trigger.Fire{Routine: r.Name, Kind: "email", Payload: []byte(`{"uid":7}`), DedupeKey: "imap:0:42:7", DedupeWindow: trigger.EmailDedupeWindow}
	for range 2 {
		if err := enqueueDeduped(t.Context(), st, wk, log, r, fire); err != nil {
			t.Fatal(err)
		}
	}
	fire.DedupeKey = "imap:0:42:8"
	if err := enqueueDeduped(t.Context(), st, wk, log, r, fire); err != nil {
		t.Fatal(err)
	}
	runs, err := st.RunList(t.Context(), &store.RunListParams{Routine: r.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || wk.n != 2 {
		t.Fatalf("%d runs, %d wake-ups; want 2 and 2", len(runs), wk.n)
	}
	for _, run := range runs {
		if run.Trigger.Kind != "email" || string(run.Trigger.Payload) != `{"uid":7}` {
			t.Fatalf("run trigger %+v", run.Trigger)
		}
	}
}

func TestTriggerSecrets(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "r", Secrets: []routine.SecretRef{{Name: "IMAP_PASSWORD"}}, Env: map[string]string{"IMAP_USER": "me@example.com"}}
	lookup := func(_ context.Context, name string, ref routine.SecretRef) (string, error) {
		if name != "r" || ref.Name != "IMAP_PASSWORD" {
			return "", errors.New("unexpected lookup")
		}
		return "pw", nil
	}
	resolve := triggerSecrets(r, lookup)
	for in, want := range map[string]string{"{{IMAP_PASSWORD}}": "pw", "{{ IMAP_USER }}": "me@example.com", "literal": "literal"} {
		if got, err := resolve(t.Context(), in); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := resolve(t.Context(), "{{OTHER}}"); err == nil {
		t.Error("an undeclared name resolved")
	}
}
