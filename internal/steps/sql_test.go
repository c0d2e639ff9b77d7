package steps

import (
	"database/sql"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

type sqlBundle struct {
	dir      string // the routine directory
	stateDir string // the project's .routines directory, if any
	perms    *routine.Permissions
	stdout   strings.Builder
}

func setupSQL(t *testing.T) *sqlBundle {
	t.Helper()
	return &sqlBundle{dir: t.TempDir()}
}

// exec runs a sql action in the routine directory and returns its outputs.
func (b *sqlBundle) exec(t *testing.T, a *routine.SQLAction) (routine.Outputs, error) {
	t.Helper()
	res, err := SQLKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "sql", Attempt: 1,
		Action:      &routine.Action{SQL: a},
		Dir:         b.dir,
		Permissions: b.perms,
		StateDir:    b.stateDir,
		Stdout:      &b.stdout,
	})
	if err != nil {
		return nil, err
	}
	wantShape(t, "sql", res.Outputs)
	return res.Outputs, nil
}

// must runs a and fails the test unless it succeeds.
func (b *sqlBundle) must(t *testing.T, a *routine.SQLAction) routine.Outputs {
	t.Helper()
	out, err := b.exec(t, a)
	if err != nil {
		t.Fatalf("%q: %v", a.Query, err)
	}
	return out
}

// fails runs a and fails the test unless it fails with an error that
// contains each of want and that is retryable as said.
func (b *sqlBundle) fails(t *testing.T, a *routine.SQLAction, retryable bool, want ...string) error {
	t.Helper()
	_, err := b.exec(t, a)
	if err == nil {
		t.Fatalf("%q (db %q) succeeded, want an error", a.Query, a.DB)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%q: error %q lacks %q", a.Query, err, w)
		}
	}
	if _, r, _ := stepkind.Describe(err); r != retryable {
		t.Fatalf("%q: error %q: retryable is not %v", a.Query, err, retryable)
	}
	return err
}

func TestSQLCreateInsertSelect(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	evil := "'; DROP TABLE orders; --"
	out := b.must(t, &routine.SQLAction{
		DB: "data/orders.db",
		Query: `CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, customer TEXT, total_cents INTEGER);
			INSERT INTO orders (id, customer, total_cents) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		Params: []string{"o-1", evil, "1250"},
	})
	if out["affected"] != "1" || out["count"] != "0" || !rowsAre(out["rows"], "[]") {
		t.Fatalf("insert outputs %v", out)
	}
	// The same id again: ON CONFLICT leaves the row, and nothing changed.
	out = b.must(t, &routine.SQLAction{
		DB:     "data/orders.db",
		Query:  "INSERT INTO orders (id, customer, total_cents) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
		Params: []string{"o-1", "other", "1"},
	})
	if out["affected"] != "0" {
		t.Fatalf("duplicate insert outputs %v", out)
	}
	out = b.must(t, &routine.SQLAction{
		DB:     "data/orders.db",
		Query:  "SELECT id, customer, total_cents FROM orders WHERE total_cents > ? ORDER BY id",
		Params: []string{"100"},
	})
	want := `[{"id":"o-1","customer":"'; DROP TABLE orders; --","total_cents":1250}]`
	if !rowsAre(out["rows"], want) || out["count"] != "1" || out["affected"] != "0" {
		t.Fatalf("select outputs %v, want rows %s", out, want)
	}
	if !strings.Contains(b.stdout.String(), filepath.Join("data", "orders.db")+": 1 row returned, 0 rows affected\n") {
		t.Fatalf("stdout:\n%s", b.stdout.String())
	}
}

func TestSQLDefaultDB(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	b.must(t, &routine.SQLAction{Query: "CREATE TABLE t (a)"})
	if _, err := os.Stat(filepath.Join(b.dir, routine.DefaultSQLDB)); err != nil {
		t.Fatal(err)
	}
	// sqlite: in front of the path is the same file.
	out := b.must(t, &routine.SQLAction{DB: "sqlite:" + routine.DefaultSQLDB, Query: "SELECT count(*) AS n FROM t"})
	if !rowsAre(out["rows"], `[{"n":0}]`) {
		t.Fatalf("outputs %v", out)
	}
}

func TestSQLTransactionIsAtomic(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	b.fails(t, &routine.SQLAction{
		Query: "CREATE TABLE t (a); INSERT INTO t VALUES (1); INSERT INTO missing VALUES (2)",
	}, false, "statement 3 of 3", "no such table: missing")
	out := b.must(t, &routine.SQLAction{Query: "SELECT count(*) AS n FROM sqlite_schema"})
	if !rowsAre(out["rows"], `[{"n":0}]`) {
		t.Fatalf("the failed query left tables: %v", out)
	}
}

func TestSQLAffected(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	for _, tt := range []struct {
		query, affected, count string
	}{
		{"CREATE TABLE t (a INTEGER, b TEXT); CREATE TABLE log (a)", "0", "0"},
		{"CREATE TRIGGER t_log AFTER UPDATE ON t BEGIN INSERT INTO log VALUES (new.a); END", "0", "0"},
		{"INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')", "3", "0"},
		// Triggered inserts into log are not the statement's own.
		{"UPDATE t SET b = 'w' WHERE a >= 2", "2", "0"},
		{"SELECT * FROM t", "0", "3"},
		{"DELETE FROM t WHERE a = 1 RETURNING a", "1", "1"},
		{"UPDATE t SET b = 'v'; CREATE TABLE u (a)", "0", "0"},
	} {
		out := b.must(t, &routine.SQLAction{Query: tt.query})
		if out["affected"] != tt.affected || out["count"] != tt.count {
			t.Fatalf("%q: outputs %v, want affected %s and count %s", tt.query, out, tt.affected, tt.count)
		}
	}
	out := b.must(t, &routine.SQLAction{Query: "SELECT count(*) AS n FROM log"})
	if !rowsAre(out["rows"], `[{"n":4}]`) {
		t.Fatalf("log: %v", out)
	}
}

func TestSQLValueTypes(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	b.must(t, &routine.SQLAction{
		Query: `CREATE TABLE v (n, i INTEGER, f REAL, s TEXT, blob BLOB, utf BLOB, num NUMERIC);
			INSERT INTO v VALUES (NULL, 42, 1.5, 'héllo', x'00ff10', CAST('text' AS BLOB), ?)`,
		Params: []string{"7"},
	})
	out := b.must(t, &routine.SQLAction{
		Query: "SELECT n, i, f, s, blob, utf, num, 1e999 AS inf, -1e999 AS neg, 9007199254740993 AS big FROM v",
	})
	want := `[{"n":null,"i":42,"f":1.5,"s":"héllo","blob":"AP8Q","utf":"text","num":7,"inf":"Infinity","neg":"-Infinity","big":9007199254740993}]`
	if !rowsAre(out["rows"], want) {
		t.Fatalf("rows\n%s\nwant\n%s", routine.OutputText(out["rows"]), want)
	}
	// Params are text; a column without a type keeps them as text.
	out = b.must(t, &routine.SQLAction{Query: "SELECT ? AS p, typeof(?) AS t, ? + 1 AS sum", Params: []string{"5", "5", "5"}})
	if !rowsAre(out["rows"], `[{"p":"5","t":"text","sum":6}]`) {
		t.Fatalf("rows %s", routine.OutputText(out["rows"]))
	}
	// Columns of the same name: the last one wins, in the first one's place.
	out = b.must(t, &routine.SQLAction{Query: "SELECT 1 AS a, 2 AS b, 3 AS a"})
	if !rowsAre(out["rows"], `[{"a":3,"b":2}]`) {
		t.Fatalf("rows %s", routine.OutputText(out["rows"]))
	}
}

func TestSQLRowsCap(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	query := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?)
		SELECT x, printf('%050d', x) AS pad FROM c`
	out := b.must(t, &routine.SQLAction{Query: query, Params: []string{"10000"}})
	if rows := routine.OutputText(out["rows"]); out["count"] != "10000" || len(rows) > MaxSQLRowsBytes {
		t.Fatalf("count %s, %d bytes", out["count"], len(rows))
	}
	b.fails(t, &routine.SQLAction{Query: query, Params: []string{"100000"}}, false, "more than 1 MiB of JSON", "add LIMIT")
}

func TestSQLErrors(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	b.must(t, &routine.SQLAction{Query: "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)"})
	b.fails(t, &routine.SQLAction{Query: "SELEC 1"}, false, `near "SELEC": syntax error`)
	b.fails(t, &routine.SQLAction{Query: "SELECT 1; SELEC 2"}, false, "statement 2 of 2", `near "SELEC": syntax error`)
	b.must(t, &routine.SQLAction{Query: "INSERT INTO t VALUES (?, 1)", Params: []string{"a"}})
	b.fails(t, &routine.SQLAction{Query: "INSERT INTO t VALUES (?, 1)", Params: []string{"a"}}, false, "UNIQUE constraint failed: t.id")
	b.fails(t, &routine.SQLAction{Query: "INSERT INTO t VALUES ('b', NULLIF(?, ''))", Params: []string{""}}, false, "NOT NULL constraint failed: t.n")
	b.fails(t, &routine.SQLAction{Query: "SELECT ?, ?", Params: []string{"a"}}, false, "sql has 2 parameters, but params has 1 value")
	b.fails(t, &routine.SQLAction{Query: "SELECT ?1, ?3", Params: []string{"a", "b"}}, false, "sql has 3 parameters, but params has 2 values")
	b.fails(t, &routine.SQLAction{Query: "SELECT 1", Params: []string{"a"}}, false, "sql has 0 parameters, but params has 1 value")
	b.fails(t, &routine.SQLAction{Query: "SELECT ?; SELECT ?", Params: []string{"a"}}, false, "statement 1 of 2 has ? parameters, but params bind to the last statement only")
	b.fails(t, &routine.SQLAction{Query: "SELECT :name", Params: []string{"a"}}, false, "named parameter :name")
	b.fails(t, &routine.SQLAction{Query: "-- nothing\n;"}, false, "holds no statement")
	b.fails(t, &routine.SQLAction{DB: "postgres://app:pw@db/app", Query: "SELECT 1"}, false, "does not go in routine.yaml", `db: "{{DATABASE_URL}}"`)
	b.fails(t, &routine.SQLAction{DB: "{{ env.DB }}.db", Query: "SELECT 1"}, false, "sql.db is not templated")
	b.fails(t, &routine.SQLAction{DB: "{{DATABASE_URL}}", Query: "SELECT 1"}, false, "DATABASE_URL is not a secret of the run")
	// Nothing of a failed step is left behind.
	out := b.must(t, &routine.SQLAction{Query: "SELECT count(*) AS n FROM t"})
	if !rowsAre(out["rows"], `[{"n":1}]`) {
		t.Fatalf("rows %s", routine.OutputText(out["rows"]))
	}
}

func TestSQLPathConfinement(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(b.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "new.db"), filepath.Join(b.dir, "dangling.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b.dir, "dir.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ db, want string }{
		{"../escape.db", "outside the routine directory"},
		{"data/../../escape.db", "outside the routine directory"},
		{filepath.Join(outside, "abs.db"), "outside the routine directory"},
		{"link/through.db", "link is a symlink"},
		{"dangling.db", "dangling.db is a symlink"},
		{"dir.db", "is a directory"},
		{".", "outside the routine directory"},
	} {
		b.fails(t, &routine.SQLAction{DB: tt.db, Query: "CREATE TABLE t (a)"}, false, tt.want)
	}
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 0 {
		t.Fatalf("files outside the routine directory: %v %v", entries, err)
	}
}

func TestSQLPermissionsWrite(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	granted := t.TempDir()
	shared := filepath.Join(filepath.Dir(b.dir), "shared-"+filepath.Base(b.dir))
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	b.perms = &routine.Permissions{Write: []string{granted, "../" + filepath.Base(shared)}}
	// Absolute under a granted path; relative through a granted relative
	// path. A symlink inside the routine directory to a granted path is
	// refused like any link (TestEscapeSQLSymlinkDB).
	for _, db := range []string{
		filepath.Join(granted, "sub", "a.db"),
		"../" + filepath.Base(shared) + "/b.db",
	} {
		b.must(t, &routine.SQLAction{DB: db, Query: "CREATE TABLE t (a)"})
	}
	for _, f := range []string{filepath.Join(granted, "sub", "a.db"), filepath.Join(shared, "b.db")} {
		db, err := sql.Open("sqlite", f)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 't'").Scan(&n)
		db.Close()
		if err != nil || n != 1 {
			t.Fatalf("%s: table t: %d %v", f, n, err)
		}
	}
}

func TestSplitSQL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		query string
		want  []sqlStatement
	}{
		{"SELECT 1", []sqlStatement{{text: "SELECT 1"}}},
		{" SELECT 1 ; ; SELECT ?;\n-- done\n", []sqlStatement{{text: "SELECT 1"}, {text: "SELECT ?", params: 1}}},
		{"INSERT INTO t VALUES ('a;b', \"c;d\", `e;f`, [g;h], 'it''s;') -- x;y\n", []sqlStatement{{text: "INSERT INTO t VALUES ('a;b', \"c;d\", `e;f`, [g;h], 'it''s;') -- x;y"}}},
		{"/* a; b */ SELECT '?', ? /* ? */ -- ?\n", []sqlStatement{{text: "/* a; b */ SELECT '?', ? /* ? */ -- ?", params: 1}}},
		{"SELECT ?, ?5, ?", []sqlStatement{{text: "SELECT ?, ?5, ?", params: 6}}},
		{"SELECT @x, :y", []sqlStatement{{text: "SELECT @x, :y", named: "@x"}}},
		{"SELECT $x", []sqlStatement{{text: "SELECT $x", named: "$x"}}},
		{
			"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = CASE WHEN new.a > 1 THEN 'x' ELSE 'y' END; DELETE FROM u; END; SELECT 2",
			[]sqlStatement{
				{text: "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = CASE WHEN new.a > 1 THEN 'x' ELSE 'y' END; DELETE FROM u; END"},
				{text: "SELECT 2"},
			},
		},
		{"SELECT CASE WHEN 1 THEN 2 END; SELECT 3", []sqlStatement{{text: "SELECT CASE WHEN 1 THEN 2 END"}, {text: "SELECT 3"}}},
		// Dollar quotes are PostgreSQL's: SQLite splits there.
		{"SELECT $$a;b$$", []sqlStatement{{text: "SELECT $$a", named: "$a"}, {text: "b$$"}}},
		{"-- only a comment", nil},
	} {
		checkSplit(t, tt.query, dialectSQLite, tt.want)
	}
}

func TestSplitSQLPostgres(t *testing.T) {
	t.Parallel()
	fn := `CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO log VALUES (NEW.id, 'it''s; $1 ?');
  RETURN NEW;
END;
$$`
	for _, tt := range []struct {
		query string
		want  []sqlStatement
	}{
		{"SELECT $1, $3; SELECT 2", []sqlStatement{{text: "SELECT $1, $3", params: 3}, {text: "SELECT 2"}}},
		{fn + "; INSERT INTO t VALUES ($1)", []sqlStatement{{text: fn}, {text: "INSERT INTO t VALUES ($1)", params: 1}}},
		{"DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$; SELECT 1", []sqlStatement{{text: "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$"}, {text: "SELECT 1"}}},
		// A tag is a name: $1$ is a parameter then a $.
		{"SELECT $a$ $b$ ; $a$", []sqlStatement{{text: "SELECT $a$ $b$ ; $a$"}}},
		// $ inside a name starts no quote.
		{"SELECT a$b$ FROM t; SELECT 2", []sqlStatement{{text: "SELECT a$b$ FROM t"}, {text: "SELECT 2"}}},
		{"SELECT E'it\\'s;', 'a\\'; SELECT 2", []sqlStatement{{text: "SELECT E'it\\'s;', 'a\\'"}, {text: "SELECT 2"}}},
		{"SELECT '1'::int, data ? 'k' FROM t", []sqlStatement{{text: "SELECT '1'::int, data ? 'k' FROM t", qmarks: 1}}},
		{"/* a /* nested; */ still; */ SELECT [1;2]", []sqlStatement{{text: "/* a /* nested; */ still; */ SELECT [1"}, {text: "2]"}}},
		{"SELECT \"a;\"\"b\"; SELECT `x;y`", []sqlStatement{{text: "SELECT \"a;\"\"b\""}, {text: "SELECT `x"}, {text: "y`"}}},
		{
			"CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; SELECT a; END; SELECT f(1)",
			[]sqlStatement{
				{text: "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; SELECT a; END"},
				{text: "SELECT f(1)"},
			},
		},
		// PostgreSQL's CREATE TRIGGER has no body.
		{"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit(); SELECT 1", []sqlStatement{
			{text: "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit()"}, {text: "SELECT 1"},
		}},
		{"SELECT $$unterminated; SELECT 2", []sqlStatement{{text: "SELECT $$unterminated; SELECT 2"}}},
		{"SELECT @x, :y, $99999999999999999999", []sqlStatement{{text: "SELECT @x, :y, $99999999999999999999", params: math.MaxInt}}},
	} {
		checkSplit(t, tt.query, dialectPostgres, tt.want)
	}
}

func checkSplit(t *testing.T, query string, d sqlDialect, want []sqlStatement) {
	t.Helper()
	got := splitSQL(query, d)
	if len(got) != len(want) {
		t.Fatalf("%q: %d statements %+v, want %+v", query, len(got), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q: statement %d = %+v, want %+v", query, i+1, got[i], want[i])
		}
	}
}

func FuzzSplitSQL(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT ?", "'a;b'", "CREATE TRIGGER x BEGIN SELECT 1; END;", "/* ;", "[", "?99999999999999999999",
		"$$a;$$", "$t$ $$ ; $t$", "E'\\'';'", "/* /* */ ; */", "BEGIN ATOMIC SELECT 1; END", "$1$", "a$b$;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, d := range []sqlDialect{dialectSQLite, dialectPostgres} {
			stmts := splitSQL(q, d)
			rest := q
			for _, s := range stmts {
				if strings.Trim(s.text, sqlSpace) == "" || s.params < 0 || s.qmarks < 0 {
					t.Fatalf("%q (dialect %d): statement %+v", q, d, s)
				}
				// Statements are pieces of the query, in order.
				at := strings.Index(rest, s.text)
				if at < 0 {
					t.Fatalf("%q (dialect %d): statement %q is not next in the query", q, d, s.text)
				}
				rest = rest[at+len(s.text):]
			}
		}
		// Whatever a quoted string holds, it stays in its statement.
		quoted := "SELECT '" + strings.ReplaceAll(q, "'", "''") + "'"
		if got := splitSQL(quoted+"; SELECT 2", dialectSQLite); len(got) != 2 || got[0].text != quoted {
			t.Fatalf("%q: SQLite split %+v", q, got)
		}
		if got := splitSQL(quoted+"; SELECT 2", dialectPostgres); len(got) != 2 || got[0].text != quoted {
			t.Fatalf("%q: PostgreSQL split %+v", q, got)
		}
		if !strings.Contains(q, "$$") && !strings.HasSuffix(q, "$") {
			body := "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$" + q + "$$"
			if got := splitSQL(body+"; SELECT 2", dialectPostgres); len(got) != 2 || got[0].text != body {
				t.Fatalf("%q: dollar-quoted body split %+v", q, got)
			}
		}
	})
}

// rowsAre reports whether a rows output holds the rows of the JSON want,
// decoded as outputs hold them.
func rowsAre(rows any, want string) bool {
	w, err := routine.DecodeJSON([]byte(want))
	return err == nil && reflect.DeepEqual(rows, w)
}
