package pgtest

import (
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestServerDatabases(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := s.Database(t)
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			var db string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			if p, _ := url.Parse(u); p.Path != "/"+db {
				t.Fatalf("url %s, connected to %s", u, db)
			}
			// Each subtest has its own database: the same table twice is fine.
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (a int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A wrong password is refused: the server checks passwords.
	u, _ := url.Parse(s.Database(t))
	u.User = url.UserPassword("postgres", "wrong")
	if conn, err := pgx.Connect(t.Context(), u.String()); err == nil {
		conn.Close(t.Context())
		t.Fatal("a wrong password was accepted")
	}
}
