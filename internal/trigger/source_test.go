package trigger_test

import (
	"context"
	"errors"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/trigger"
)

func TestCredentials(t *testing.T) {
	t.Parallel()
	r := &routine.Routine{Name: "r", Secrets: []routine.SecretRef{{Name: "IMAP_PASSWORD"}}, Env: map[string]string{"IMAP_USER": "me@example.com"}}
	lookup := func(_ context.Context, rt *routine.Routine, ref routine.SecretRef) (string, error) {
		if rt != r || ref.Name != "IMAP_PASSWORD" {
			return "", errors.New("unexpected lookup")
		}
		return "pw", nil
	}
	resolve := trigger.Credentials(r, lookup)
	for in, want := range map[string]string{"{{IMAP_PASSWORD}}": "pw", "{{ IMAP_USER }}": "me@example.com", "literal": "literal"} {
		if got, err := resolve(t.Context(), in); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := resolve(t.Context(), "{{OTHER}}"); err == nil {
		t.Error("an undeclared name resolved")
	}
}
