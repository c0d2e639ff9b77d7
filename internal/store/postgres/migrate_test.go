package postgres_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store/postgres"
)

func (b *testBundle) appliedVersions(t *testing.T) []int {
	t.Helper()
	rows, err := b.raw(t).Query(b.ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// Servers that start at once on an empty database migrate it once: the
// advisory lock makes the others wait, then find it up to date.
func TestMigrateConcurrentOpens(t *testing.T) {
	t.Parallel()
	b := &testBundle{ctx: t.Context(), url: pgtest.Shared(t).Database(t)}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	var want []int
	for i := range files {
		want = append(want, i+1)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := postgres.Open(b.ctx, b.url, postgres.Options{})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if got := b.appliedVersions(t); !slices.Equal(got, want) {
		t.Fatalf("applied migrations %v, want %v", got, want)
	}
	// And once more, up to date.
	b.open(t, postgres.Options{})
	if got := b.appliedVersions(t); !slices.Equal(got, want) {
		t.Fatalf("after reopening: applied migrations %v, want %v", got, want)
	}
}

// A database that a newer binary migrated is refused, saying to upgrade.
func TestNewerSchema(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	known := len(b.appliedVersions(t))
	if _, err := b.raw(t).Exec(b.ctx, "INSERT INTO schema_migrations (version) VALUES (99)"); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(b.ctx, b.url, postgres.Options{})
	want := fmt.Sprintf("was migrated by a newer routines (schema 99 > %d): upgrade this binary", known)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: got %v, want an error containing %q", err, want)
	}
}

// A URL that does not parse is refused without quoting it: it may hold a
// password.
func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), "postgres://routines:s3cret@db.example:notaport/routines", postgres.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "postgres://user:password@host:5432/database") {
		t.Fatalf("Open with a bad URL: %v; want an error showing the form of a URL, without the password", err)
	}
}
