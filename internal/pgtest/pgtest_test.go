package pgtest

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestShared: the tests of a binary share one server, whose databases
// serve them as StartServer's do.
func TestShared(t *testing.T) {
	t.Parallel()
	first := Shared(t)
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if s := Shared(t); s != first {
				t.Fatalf("Shared returned servers on ports %d and %d, want one", first.port, s.port)
			}
			conn, err := pgx.Connect(t.Context(), first.Database(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (a int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

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

// TestBinDir finds initdb on PATH first, else the newest Debian version.
func TestBinDir(t *testing.T) {
	t.Parallel()
	notFound := func(string) (string, error) { return "", errors.New("not found") }
	onPath := func(string) (string, error) { return "/opt/pg/bin/initdb", nil }
	none := func(string) ([]string, error) { return nil, nil }
	debian := func(string) ([]string, error) {
		return []string{"/usr/lib/postgresql/9/bin/initdb", "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/13/bin/initdb"}, nil
	}
	for _, tt := range []struct {
		name     string
		lookPath func(string) (string, error)
		glob     func(string) ([]string, error)
		want     string
		err      error
	}{
		{"on PATH", onPath, debian, "/opt/pg/bin", nil},
		{"newest of Debian's", notFound, debian, "/usr/lib/postgresql/15/bin", nil},
		{"missing", notFound, none, "", errMissing},
	} {
		got, err := binDir(tt.lookPath, tt.glob)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

// TestVerdict: without PostgreSQL a test skips, saying how to install it,
// but fails under CI.
func TestVerdict(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ci   string
		fail bool
	}{{"", false}, {"false", false}, {"0", false}, {"yes", false}, {"true", true}, {"1", true}, {"TRUE", true}} {
		fail, msg := verdict(tt.ci, errMissing)
		if fail != tt.fail {
			t.Errorf("CI=%q: fail %v, want %v", tt.ci, fail, tt.fail)
		}
		for _, want := range []string{"PostgreSQL not found", "/usr/lib/postgresql/*/bin", "`apt-get install -y postgresql`", "CI=true"} {
			if !strings.Contains(msg, want) {
				t.Errorf("CI=%q: %q lacks %q", tt.ci, msg, want)
			}
		}
	}
}

// TestStopStart: a stopped server refuses connections; started again, it
// answers on its port with its data.
func TestStopStart(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	u := s.Database(t)
	exec := func() error {
		conn, err := pgx.Connect(t.Context(), u)
		if err != nil {
			return err
		}
		defer conn.Close(t.Context())
		_, err = conn.Exec(t.Context(), "CREATE TABLE IF NOT EXISTS t (a int); INSERT INTO t VALUES (1)")
		return err
	}
	if err := exec(); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	if err := exec(); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Start(t)
	if err := exec(); err != nil {
		t.Fatalf("started again: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after the restart: %d, %v; want 2", n, err)
	}
}
