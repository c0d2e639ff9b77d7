package steps

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// The escape suite of the sql step: each attack tries to make the step,
// which runs in the engine and outside the sandbox, touch a file other
// than its db. The layers that stop them: the path check (openat2 beneath
// the root, no links) and the connection's authorizer.

// escapeProject is a project whose routine lives in a subdirectory, with
// the engine's store in .routines/state.db, and a directory outside it.
type escapeProject struct {
	*sqlBundle
	project string
	store   string // .routines/state.db
	outside string
}

func setupEscape(t *testing.T) *escapeProject {
	t.Helper()
	project := t.TempDir()
	p := &escapeProject{
		sqlBundle: &sqlBundle{dir: filepath.Join(project, "sub"), stateDir: filepath.Join(project, ".routines")},
		project:   project,
		store:     filepath.Join(project, ".routines", "state.db"),
		outside:   t.TempDir(),
	}
	for _, d := range []string{p.dir, p.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", p.store)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE runs (id TEXT); INSERT INTO runs VALUES ('01RUN')"); err != nil {
		t.Fatal(err)
	}
	return p
}

// fileState is what a file was: its existence, size and mtime.
type fileState struct {
	exists bool
	size   int64
	mtime  time.Time
}

// snapshot records the state of every file under the store's directory
// and the outside directory.
func (p *escapeProject) snapshot(t *testing.T) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	for _, root := range []string{p.stateDir, p.outside} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			out[path] = fileState{exists: true, size: fi.Size(), mtime: fi.ModTime()}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// refused runs a, which must fail with an error holding want, then checks
// that no file outside the routine directory was created or changed.
func (p *escapeProject) refused(t *testing.T, layer string, a *routine.SQLAction, want string) {
	t.Helper()
	before := p.snapshot(t)
	_, err := p.exec(t, a)
	if err == nil {
		t.Fatalf("%s did not stop %q (db %q): it succeeded", layer, a.Query, a.DB)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %q (db %q): error %q lacks %q", layer, a.Query, a.DB, err, want)
	}
	if _, retry, _ := stepkind.Describe(err); retry {
		t.Fatalf("%s: %q: a refusal must not be retried: %v", layer, a.Query, err)
	}
	after := p.snapshot(t)
	for path, s := range after {
		if b, ok := before[path]; !ok || b != s {
			t.Fatalf("%s did not stop %q (db %q): %s was created or changed (%+v → %+v)", layer, a.Query, a.DB, path, b, s)
		}
	}
	for path := range before {
		if _, ok := after[path]; !ok {
			t.Fatalf("%s did not stop %q (db %q): %s was removed", layer, a.Query, a.DB, path)
		}
	}
}

func TestEscapeSQLAttach(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	for _, target := range []string{filepath.Join(p.outside, "new.db"), p.store, "../.routines/state.db"} {
		p.refused(t, "the sql authorizer", &routine.SQLAction{
			Query: "ATTACH '" + target + "' AS x; CREATE TABLE x.pwned (a); DELETE FROM x.runs",
		}, "ATTACH")
		// A parameter is bound, but ATTACH takes an expression: still refused.
		p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "ATTACH ? AS x", Params: []string{target}}, "ATTACH")
	}
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "DETACH main"}, "DETACH")
}

func TestEscapeSQLVacuumInto(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	p.must(t, &routine.SQLAction{Query: "CREATE TABLE t (a); INSERT INTO t VALUES ('secret')"})
	// VACUUM cannot run in the step's transaction, and the authorizer
	// refuses the ATTACH it does: two layers.
	p.refused(t, "the sql step's transaction", &routine.SQLAction{Query: "VACUUM INTO '" + filepath.Join(p.outside, "copy.db") + "'"}, "VACUUM")
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "VACUUM INTO '" + p.store + "'"}, "VACUUM")
	// Outside a transaction, the authorizer alone stops it.
	f, err := sqlPath(p.dir, "", p.stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openSQLite(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	copyDB := filepath.Join(p.outside, "copy.db")
	if _, err := db.conn.ExecContext(t.Context(), "VACUUM INTO '"+copyDB+"'"); err == nil || !strings.Contains(db.guard.explain(err).Error(), "VACUUM") {
		t.Fatalf("the sql authorizer did not stop VACUUM INTO outside a transaction: %v", err)
	}
	if _, err := os.Stat(copyDB); !os.IsNotExist(err) {
		t.Fatalf("the sql authorizer did not stop VACUUM INTO: %s exists (%v)", copyDB, err)
	}
}

func TestEscapeSQLLoadExtension(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	lib := filepath.Join(p.outside, "evil.so")
	if err := os.WriteFile(lib, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "SELECT load_extension('" + lib + "')"}, "load_extension() is not allowed")
}

func TestEscapeSQLFilePragmasAndPages(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	p.must(t, &routine.SQLAction{Query: "CREATE TABLE t (a)"})
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "PRAGMA temp_store_directory = '" + p.outside + "'"}, "PRAGMA temp_store_directory")
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "PRAGMA writable_schema = ON"}, "PRAGMA writable_schema")
	p.refused(t, "the sql authorizer", &routine.SQLAction{Query: "UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 1"}, "sqlite_dbpage")
}

func TestEscapeSQLSymlinkDB(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	for name, target := range map[string]string{
		"store.db":    p.store,
		"dangling.db": filepath.Join(p.outside, "new.db"),
		"storedir":    p.stateDir,
		"out":         p.outside,
	} {
		if err := os.Symlink(target, filepath.Join(p.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for db, want := range map[string]string{
		"store.db":          "store.db is a symlink",
		"dangling.db":       "dangling.db is a symlink",
		"storedir/state.db": "storedir is a symlink",
		"out/x/new.db":      "out is a symlink",
	} {
		p.refused(t, "the sql path check", &routine.SQLAction{DB: db, Query: "DELETE FROM runs"}, want)
	}
	// SQLite opens the journals by name next to the file: a planted
	// journal link would be written through.
	p.must(t, &routine.SQLAction{DB: "j.db", Query: "CREATE TABLE t (a)"})
	os.Remove(filepath.Join(p.dir, "j.db-wal"))
	if err := os.Symlink(filepath.Join(p.outside, "wal"), filepath.Join(p.dir, "j.db-wal")); err != nil {
		t.Fatal(err)
	}
	p.refused(t, "the sql path check", &routine.SQLAction{DB: "j.db", Query: "INSERT INTO t VALUES (1)"}, "j.db-wal is a symlink")
	// A hard link to the store is the store.
	if err := os.Link(p.store, filepath.Join(p.dir, "hard.db")); err != nil {
		t.Fatal(err)
	}
	p.refused(t, "the sql path check", &routine.SQLAction{DB: "hard.db", Query: "DELETE FROM runs"}, "hard links")
}

// A link planted after the path check, on the way to a file it passed, is
// seen in the name SQLite opened.
func TestEscapeSQLSwappedAfterCheck(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	if err := os.Symlink(p.stateDir, filepath.Join(p.dir, "swapped")); err != nil {
		t.Fatal(err)
	}
	before := p.snapshot(t)
	db, err := openSQLite(t.Context(), sqlFile{path: filepath.Join(p.dir, "swapped", "state.db")})
	if err == nil {
		db.close()
		t.Fatal("the sql open check did not see a link planted after the path check")
	}
	if !strings.Contains(err.Error(), "a link was planted") {
		t.Fatalf("the sql open check: %v", err)
	}
	for path, s := range p.snapshot(t) {
		if before[path] != s {
			t.Fatalf("the sql open check came too late: %s changed", path)
		}
	}
}

func TestEscapeSQLDotDot(t *testing.T) {
	t.Parallel()
	p := setupEscape(t)
	for _, db := range []string{"../.routines/state.db", "data/../../.routines/state.db", p.store, "../escape.db", filepath.Join(p.outside, "abs.db")} {
		p.refused(t, "the sql path check", &routine.SQLAction{DB: db, Query: "CREATE TABLE pwned (a)"}, "sql.db")
	}
	// A routine at the project root has .routines inside its directory.
	root := &escapeProject{sqlBundle: &sqlBundle{dir: p.project, stateDir: p.stateDir}, project: p.project, store: p.store, outside: p.outside}
	for _, db := range []string{".routines/state.db", "./.routines/x.db", ".routines"} {
		root.refused(t, "the sql path check", &routine.SQLAction{DB: db, Query: "CREATE TABLE pwned (a)"}, ".routines directory")
	}
	// Granting the store's directory does not admit it either.
	root.perms = &routine.Permissions{Write: []string{p.stateDir}}
	root.refused(t, "the sql path check", &routine.SQLAction{DB: p.store, Query: "DELETE FROM runs"}, ".routines directory")
}

func TestSQLPermissionsRead(t *testing.T) {
	t.Parallel()
	b := setupSQL(t)
	shared := t.TempDir()
	f := filepath.Join(shared, "ref.db")
	db, err := sql.Open("sqlite", f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (a); INSERT INTO t VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b.perms = &routine.Permissions{Read: []string{shared}}
	if out := b.must(t, &routine.SQLAction{DB: f, Query: "SELECT a FROM t"}); !rowsAre(out["rows"], `[{"a":"x"}]`) {
		t.Fatalf("rows %s", routine.OutputText(out["rows"]))
	}
	b.fails(t, &routine.SQLAction{DB: f, Query: "INSERT INTO t VALUES ('y')"}, false, "readonly")
	b.fails(t, &routine.SQLAction{DB: filepath.Join(shared, "new.db"), Query: "CREATE TABLE t (a)"}, false, "only in permissions.read")
	if _, err := os.Stat(filepath.Join(shared, "new.db")); !os.IsNotExist(err) {
		t.Fatalf("a file was created under a read grant: %v", err)
	}
}
