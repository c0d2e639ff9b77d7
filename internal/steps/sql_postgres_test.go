package steps

import (
	"context"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// pgBundle runs sql steps whose db is the secret DATABASE_URL.
type pgBundle struct {
	url    string // the value of the secret
	stdout strings.Builder
}

// exec runs a sql action with db "{{DATABASE_URL}}" and returns its outputs.
func (b *pgBundle) exec(t *testing.T, query string, params ...string) (routine.Outputs, error) {
	t.Helper()
	res, err := SQLKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "save", Attempt: 1,
		Action: &routine.Action{SQL: &routine.SQLAction{DB: "{{ DATABASE_URL }}", Query: query, Params: params}},
		Dir:    t.TempDir(),
		Env:    map[string]string{"DATABASE_URL": b.url, "OTHER": "x"},
		Stdout: &b.stdout,
	})
	if err != nil {
		return nil, err
	}
	wantShape(t, "sql", res.Outputs)
	return res.Outputs, nil
}

func (b *pgBundle) must(t *testing.T, query string, params ...string) routine.Outputs {
	t.Helper()
	out, err := b.exec(t, query, params...)
	if err != nil {
		t.Fatalf("%q: %v", query, err)
	}
	return out
}

// fails runs query and fails the test unless it fails with an error that
// has the code, is retryable as said, contains each of want and holds
// neither the URL nor its password.
func (b *pgBundle) fails(t *testing.T, code string, retryable bool, query string, params []string, want ...string) {
	t.Helper()
	_, err := b.exec(t, query, params...)
	if err == nil {
		t.Fatalf("%q succeeded, want an error", query)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%q: error %q lacks %q", query, msg, w)
		}
	}
	if c, r, _ := stepkind.Describe(err); c != code || r != retryable {
		t.Fatalf("%q: error %q: code %q retryable %v, want %q %v", query, msg, c, r, code, retryable)
	}
	b.noSecret(t, msg)
}

// noSecret fails the test when s holds the URL or its password.
func (b *pgBundle) noSecret(t *testing.T, s string) {
	t.Helper()
	pw := ""
	if m := regexp.MustCompile(`://[^:/@]*:([^@]*)@`).FindStringSubmatch(b.url); m != nil {
		pw = m[1]
	}
	if strings.Contains(s, b.url) || pw != "" && strings.Contains(s, pw) {
		t.Fatalf("the secret is in %q", s)
	}
}

// TestSQLPostgres runs the sql step against a real PostgreSQL server, one
// database per subtest.
func TestSQLPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	setup := func(t *testing.T) *pgBundle {
		t.Parallel()
		return &pgBundle{url: srv.Database(t)}
	}

	t.Run("CreateInsertSelect", func(t *testing.T) {
		b := setup(t)
		evil := "'; DROP TABLE orders; --"
		out := b.must(t, `CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, customer text, total numeric(10,2));
			INSERT INTO orders (id, customer, total) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, "o-1", evil, "12.5")
		if out["affected"] != "1" || out["count"] != "0" || !rowsAre(out["rows"], "[]") {
			t.Fatalf("insert outputs %v", out)
		}
		// The same id again: ON CONFLICT leaves the row, and nothing changed.
		out = b.must(t, "INSERT INTO orders (id, customer, total) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", "o-1", "other", "1")
		if out["affected"] != "0" {
			t.Fatalf("duplicate insert outputs %v", out)
		}
		out = b.must(t, "SELECT id, customer, total FROM orders WHERE total > $1 ORDER BY id", "10")
		want := `[{"id":"o-1","customer":"'; DROP TABLE orders; --","total":12.50}]`
		if !rowsAre(out["rows"], want) || out["count"] != "1" || out["affected"] != "0" {
			t.Fatalf("select outputs %v, want rows %s", out, want)
		}
		u, _ := url.Parse(b.url)
		line := "postgres " + u.Host + u.Path + ": 1 statement, 1 row returned, 0 rows affected\n"
		if !strings.Contains(b.stdout.String(), line) || !strings.Contains(b.stdout.String(), ": 2 statements, 0 rows returned, 1 row affected\n") {
			t.Fatalf("stdout lacks %q:\n%s", line, b.stdout.String())
		}
		b.noSecret(t, b.stdout.String())
	})

	t.Run("TransactionIsAtomic", func(t *testing.T) {
		b := setup(t)
		b.fails(t, "", false, "CREATE TABLE t (a int); INSERT INTO t VALUES (1); INSERT INTO missing VALUES (2)", nil,
			"sql: statement 3 of 3: ", `relation "missing" does not exist (SQLSTATE 42P01)`)
		out := b.must(t, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")
		if !rowsAre(out["rows"], `[{"n":0}]`) {
			t.Fatalf("the failed query left tables: %v", out)
		}
	})

	t.Run("DollarQuotedFunction", func(t *testing.T) {
		b := setup(t)
		out := b.must(t, `CREATE TABLE t (id int PRIMARY KEY, note text);
			CREATE TABLE log (id int, note text);
			CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				-- a ; in a body, and $1 that is no parameter of the step
				INSERT INTO log VALUES (NEW.id, 'seen; ' || NEW.note);
				RETURN NEW;
			END;
			$$;
			CREATE TRIGGER t_audit AFTER INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit();
			INSERT INTO t VALUES ($1, $2), ($1 + 1, $2) RETURNING id`, "7", "x")
		// The rows the trigger inserted into log are not the statement's.
		if out["affected"] != "2" || !rowsAre(out["rows"], `[{"id":7},{"id":8}]`) {
			t.Fatalf("outputs %v", out)
		}
		out = b.must(t, "UPDATE t SET note = 'y' WHERE id > 7; SELECT id, note FROM log ORDER BY id, note")
		if !rowsAre(out["rows"], `[{"id":7,"note":"seen; x"},{"id":8,"note":"seen; x"},{"id":8,"note":"seen; y"}]`) || out["affected"] != "0" {
			t.Fatalf("outputs %v", out)
		}
	})

	t.Run("Types", func(t *testing.T) {
		b := setup(t)
		out := b.must(t, `SELECT NULL AS n, 42::int2 AS i2, 42 AS i4, 9007199254740993::int8 AS i8,
			1.5::float4 AS f4, 0.1::float4 AS f4b, 0.1::float8 AS f8, 'Infinity'::float8 AS inf, 'NaN'::float8 AS nan,
			12.50::numeric AS num, 12345678901234567890.123::numeric AS big, 'NaN'::numeric AS numnan,
			'héllo'::text AS s, 'x'::varchar(3) AS v, true AS t, false AS f,
			'2024-03-01 12:30:00+02'::timestamptz AS tz, '2024-03-01 12:30:00.5'::timestamp AS ts,
			'2024-03-01'::date AS d, 'infinity'::timestamptz AS tzinf,
			'\x00ff10'::bytea AS blob, convert_to('text', 'UTF8') AS utf,
			'{"b": [1, 2.50], "a": null}'::json AS j, '{"b": 1, "a": "x"}'::jsonb AS jb,
			'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid AS u, ARRAY[1, NULL, 3] AS arr, ARRAY['a', 'b'] AS tarr,
			ARRAY['2024-03-01'::date] AS darr, '1 day 2 hours'::interval AS iv, '10.0.0.1/8'::inet AS ip,
			$1 AS p, $2::int + 1 AS sum, 1 AS a, 2 AS a`, "5", "5")
		want := `[{"n":null,"i2":42,"i4":42,"i8":9007199254740993,` +
			`"f4":1.5,"f4b":0.1,"f8":0.1,"inf":"Infinity","nan":"NaN",` +
			`"num":12.50,"big":"12345678901234567890.123","numnan":"NaN",` +
			`"s":"héllo","v":"x","t":true,"f":false,` +
			`"tz":"2024-03-01T10:30:00Z","ts":"2024-03-01T12:30:00.5Z",` +
			`"d":"2024-03-01","tzinf":"infinity",` +
			`"blob":"AP8Q","utf":"text",` +
			`"j":{"b":[1,2.50],"a":null},"jb":{"a":"x","b":1},` +
			`"u":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","arr":[1,null,3],"tarr":["a","b"],` +
			`"darr":["2024-03-01"],"iv":"1 day 02:00:00","ip":"10.0.0.1/8",` +
			`"p":"5","sum":6,"a":2}]`
		if !rowsAre(out["rows"], want) {
			t.Fatalf("rows\n%s\nwant\n%s", routine.OutputText(out["rows"]), want)
		}
		// Values are bound as text, which the column's type converts.
		b.must(t, "CREATE TABLE v (i int, n numeric, b bool, ts timestamptz, j jsonb)")
		out = b.must(t, "INSERT INTO v VALUES ($1, $2, $3, $4, $5) RETURNING *", "1250", "0.10", "true", "2024-03-01T12:30:00Z", `{"k": [1]}`)
		if !rowsAre(out["rows"], `[{"i":1250,"n":0.10,"b":true,"ts":"2024-03-01T12:30:00Z","j":{"k":[1]}}]`) || out["affected"] != "1" {
			t.Fatalf("outputs %v", out)
		}
	})

	t.Run("Affected", func(t *testing.T) {
		b := setup(t)
		for _, tt := range []struct {
			query, affected, count string
		}{
			{"CREATE TABLE t (a int, b text)", "0", "0"},
			{"INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')", "3", "0"},
			{"UPDATE t SET b = 'w' WHERE a >= 2", "2", "0"},
			{"SELECT * FROM t", "0", "3"},
			{"DELETE FROM t WHERE a = 1 RETURNING a", "1", "1"},
			{"MERGE INTO t USING (VALUES (2), (9)) s(a) ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = 'm' WHEN NOT MATCHED THEN INSERT VALUES (s.a, 'n')", "2", "0"},
			{"UPDATE t SET b = 'v'; CREATE TABLE u (a int)", "0", "0"},
		} {
			out := b.must(t, tt.query)
			if out["affected"] != tt.affected || out["count"] != tt.count {
				t.Fatalf("%q: outputs %v, want affected %s and count %s", tt.query, out, tt.affected, tt.count)
			}
		}
	})

	t.Run("RowsCap", func(t *testing.T) {
		b := setup(t)
		query := "SELECT x, lpad(x::text, 50, '0') AS pad FROM generate_series(1, $1::int) AS x"
		out := b.must(t, query, "10000")
		if rows := routine.OutputText(out["rows"]); out["count"] != "10000" || len(rows) > MaxSQLRowsBytes {
			t.Fatalf("count %s, %d bytes", out["count"], len(rows))
		}
		b.fails(t, "", false, query, []string{"100000"}, "more than 1 MiB of JSON", "add LIMIT")
	})

	t.Run("Errors", func(t *testing.T) {
		b := setup(t)
		b.must(t, "CREATE TABLE t (id text PRIMARY KEY, n int NOT NULL CHECK (n > 0))")
		b.fails(t, "", false, "SELEC 1", nil, `sql: syntax error at or near "SELEC" (SQLSTATE 42601)`)
		b.fails(t, "", false, "SELECT 1; SELEC 2", nil, "sql: statement 2 of 2: ", "(SQLSTATE 42601)")
		b.fails(t, "", false, "SELECT nope FROM t", nil, `column "nope" does not exist (SQLSTATE 42703)`)
		b.must(t, "INSERT INTO t VALUES ($1, 1)", "a")
		b.fails(t, "", false, "INSERT INTO t VALUES ($1, 1)", []string{"a"},
			`duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505); Key (id)=(a) already exists.`)
		b.fails(t, "", false, "INSERT INTO t VALUES ('b', NULLIF($1, '')::int)", []string{""}, `null value in column "n"`, "(SQLSTATE 23502)")
		b.fails(t, "", false, "INSERT INTO t VALUES ('b', $1)", []string{"-1"}, "(SQLSTATE 23514)")
		b.fails(t, "", false, "INSERT INTO t VALUES ('b', $1)", []string{"many"}, `invalid input syntax for type integer: "many" (SQLSTATE 22P02)`)
		b.fails(t, "", false, "SELECT $1, $2", []string{"a"}, "sql has 2 parameters, but params has 1 value: give one value per $N")
		b.fails(t, "", false, "SELECT ?", []string{"a"}, "PostgreSQL numbers its placeholders, so write $1, $2 … instead of ?")
		b.fails(t, "", false, "SELECT $1; SELECT $1", []string{"a"}, "statement 1 of 2 has $N parameters, but params bind to the last statement only")
		// Nothing of a failed step is left behind.
		out := b.must(t, "SELECT count(*) AS n FROM t")
		if !rowsAre(out["rows"], `[{"n":1}]`) {
			t.Fatalf("rows %s", routine.OutputText(out["rows"]))
		}
	})

	t.Run("SerializationFailureIsRetryable", func(t *testing.T) {
		b := setup(t)
		b.must(t, "CREATE TABLE t (a int)")
		b.fails(t, "", true, "DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = 'serialization_failure'; END $$", nil, "lost a race (SQLSTATE 40001)")
		b.fails(t, "", true, "DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = 'too_many_connections'; END $$", nil, "(SQLSTATE 53300)")
	})

	t.Run("WrongPassword", func(t *testing.T) {
		b := setup(t)
		u, _ := url.Parse(b.url)
		u.User = url.UserPassword("postgres", "not-the-password-0123")
		b.url = u.String()
		b.fails(t, routine.CodeAuth, false, "SELECT 1", nil,
			"sql: connect to postgres "+u.Host+u.Path+": ", `password authentication failed for user "postgres" (SQLSTATE 28P01)`)
	})

	t.Run("ServerDown", func(t *testing.T) {
		b := setup(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, _ := url.Parse(b.url)
		u.Host = "127.0.0.1:" + strconv.Itoa(port)
		b.url = u.String()
		b.fails(t, routine.CodeTimeout, true, "SELECT 1", nil, "sql: connect to postgres 127.0.0.1:"+strconv.Itoa(port), "connection refused")
	})

	t.Run("ConnectTimeout", func(t *testing.T) {
		b := setup(t)
		// A server that accepts the connection and never answers.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		b.url = "postgres://app:hush-hush-1234@" + l.Addr().String() + "/app?sslmode=disable&connect_timeout=1"
		b.fails(t, routine.CodeTimeout, true, "SELECT 1", nil, "sql: connect to postgres "+l.Addr().String()+"/app: no answer in 1s")
	})

	t.Run("BadSecret", func(t *testing.T) {
		b := setup(t)
		b.url = "mysql://root:hunter2-hunter2@db/app"
		b.fails(t, "", false, "SELECT 1", nil, "the secret DATABASE_URL does not hold a postgres:// or postgresql:// URL")
		b.url = "postgres://root:hunter2-hunter2@db:notaport/app"
		b.fails(t, "", false, "SELECT 1", nil, "the secret DATABASE_URL does not hold a valid PostgreSQL URL")
	})

	t.Run("ApplicationName", func(t *testing.T) {
		b := setup(t)
		// postgresql:// too; a parameter of the URL is a setting of the session.
		b.url = strings.Replace(b.url, "postgres://", "postgresql://", 1) + "&statement_timeout=1234"
		out := b.must(t, "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS st")
		if !rowsAre(out["rows"], `[{"app":"routines","st":"1234ms"}]`) {
			t.Fatalf("rows %s", routine.OutputText(out["rows"]))
		}
		// The step closes its connection: its backend goes away.
		conn, err := pgx.Connect(t.Context(), b.url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var n int
			err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'routines'").Scan(&n)
			if err == nil && n == 0 {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("connections of routines left: %d %v", n, err)
			}
		}
	})
}
