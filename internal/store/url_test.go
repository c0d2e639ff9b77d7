package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/store"
)

func TestDriversOpenBySchemeAndRedactsPasswords(t *testing.T) {
	t.Parallel()
	var got string
	errOpened := errors.New("opened")
	d := store.Drivers{
		"sqlite":   func(_ context.Context, u string) (store.Store, error) { got = u; return nil, errOpened },
		"postgres": func(_ context.Context, u string) (store.Store, error) { got = u; return nil, errOpened },
	}
	for _, u := range []string{"sqlite:./state.db", "postgres://u:pw@127.0.0.1/db", "POSTGRES://h/db"} {
		if _, err := d.Open(t.Context(), u); !errors.Is(err, errOpened) || got != u {
			t.Errorf("%s: driver got %q, %v", u, got, err)
		}
	}
	for u, want := range map[string]string{
		"mysql://u:hunter2@h/db": "no driver for mysql: in this binary; want postgres://user@host:5432/routines or sqlite:./state.db",
		"state.db":               "want SCHEME:…",
	} {
		_, err := d.Open(t.Context(), u)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v; want it to say %q, without the password", u, err, want)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"sqlite:./state.db":        "./state.db",
		"sqlite:///var/lib/r/s.db": "/var/lib/r/s.db",
		"sqlite:rel/s.db?mode=ro":  "rel/s.db",
		"sqlite:" + "/abs/x.db":    "/abs/x.db",
	} {
		if got, err := store.SQLitePath(u); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", u, got, err, want)
		}
	}
	for _, u := range []string{"sqlite:", "postgres://h/db"} {
		if _, err := store.SQLitePath(u); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
}
