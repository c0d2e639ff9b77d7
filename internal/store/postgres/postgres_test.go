package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/store/storetest"
)

// The tests of the package share one server, each store with a database
// of its own.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s, _ := setup(t)
		return s
	})
}

type testBundle struct {
	ctx context.Context
	url string // of the test's database
}

// setup opens a store on a new database and closes it when the test ends.
func setup(t testing.TB) (*postgres.Store, *testBundle) {
	t.Helper()
	b := &testBundle{ctx: t.Context(), url: pgtest.Shared(t).Database(t)}
	return b.open(t, postgres.Options{}), b
}

// open opens another store on the test's database.
func (b *testBundle) open(t testing.TB, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(b.ctx, b.url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw connects to the test's database with no store around it, to look
// at or tamper with what the store wrote.
func (b *testBundle) raw(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(b.ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
