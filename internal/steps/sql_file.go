package steps

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	storesqlite "github.com/routines-dev/routines/internal/store/sqlite"
)

// The sql step runs in the engine, outside the sandbox of run steps, with
// the engine's rights. So the file it opens is checked here without
// following links a step could have planted, and the connection is held to
// that one file by SQLite's own controls: an authorizer that refuses
// ATTACH (and so VACUUM, whose INTO form writes a file anywhere), DETACH,
// load_extension and the pragmas that move files; a limit of no attached
// databases; and defensive mode, which makes sqlite_dbpage and the schema
// read-only.

// sqlParams are the settings of the step's connection, those of the
// store's writer: busy_timeout waits for a lock another process holds,
// _txlock=immediate takes the write lock at BEGIN so a transaction never
// fails to upgrade a stale read snapshot, WAL lets readers in meanwhile.
// mode=rw: SQLite creates no file; sqlPath creates a missing one without
// following links. WAL is set once the open is checked (openSQLite): it
// writes to the file.
const sqlParams = "mode=rw&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate&_defensive=1"

// sqlReadOnlyParams open a file of a permissions.read path: SQLite's
// mode=ro refuses every write, whatever the statements say.
const sqlReadOnlyParams = "mode=ro&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_defensive=1"

// sqlFile is the SQLite file of a step, and whether the step may write it.
type sqlFile struct {
	path     string
	readOnly bool
}

// sqlRoot is a directory a sql step's file may be under.
type sqlRoot struct {
	dir      string
	readOnly bool
}

// sqlPath returns the step's SQLite file: db under the routine directory or
// a permissions.write path, or, read-only, under a permissions.read path;
// never under the project's .routines directory (stateDir), never through a
// symlink, never a file with another hard link. Missing directories on the
// way to a writable file, and the file, are created.
func sqlPath(dir, db, stateDir string, pm *routine.Permissions) (sqlFile, error) {
	db = strings.TrimPrefix(db, "sqlite:")
	if strings.TrimSpace(db) == "" {
		db = routine.DefaultSQLDB
	}
	abs := db
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, abs)
	}
	abs = filepath.Clean(abs)
	if stateDir != "" && (abs == filepath.Clean(stateDir) || within(filepath.Clean(stateDir), abs)) {
		return sqlFile{}, fmt.Errorf("sql.db %s is in the project's .routines directory, which holds the engine's own state: keep the file in the routine directory", db)
	}
	roots := []sqlRoot{{dir: dir}}
	if pm != nil {
		for _, w := range absPaths(dir, pm.Write) {
			roots = append(roots, sqlRoot{dir: w})
		}
		for _, r := range absPaths(dir, pm.Read) {
			roots = append(roots, sqlRoot{dir: r, readOnly: true})
		}
	}
	for _, root := range roots {
		if strings.TrimSpace(root.dir) == "" || !within(filepath.Clean(root.dir), abs) {
			continue
		}
		rel, err := filepath.Rel(filepath.Clean(root.dir), abs)
		if err != nil {
			return sqlFile{}, fmt.Errorf("sql.db %s: %w", db, err)
		}
		path, err := confineSQLFile(root, rel, stateDir)
		if err != nil {
			return sqlFile{}, fmt.Errorf("sql.db %s: %w", db, err)
		}
		return sqlFile{path: path, readOnly: root.readOnly}, nil
	}
	return sqlFile{}, fmt.Errorf("sql.db %s is outside the routine directory and permissions.write: keep the file in the routine directory, or add its directory to permissions.write (permissions.read to only read it)", db)
}

// confineSQLFile checks the file rel under root without following any
// link beneath root, creates its missing directories when root is
// writable, and returns its path. The root itself, a path the routine's
// author wrote, may be a link.
func confineSQLFile(root sqlRoot, rel, stateDir string) (string, error) {
	realRoot, err := filepath.EvalSymlinks(root.dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", root.dir, err)
	}
	path := filepath.Join(realRoot, rel)
	if realState, err := filepath.EvalSymlinks(stateDir); err == nil && (path == realState || within(realState, path)) {
		return "", errors.New("is in the project's .routines directory, which holds the engine's own state: keep the file in the routine directory")
	}
	if err := checkSQLFile(root, realRoot, rel); err != nil {
		return "", err
	}
	return path, nil
}

// sqliteDB is the one connection of a sql step's attempt.
type sqliteDB struct {
	db    *sql.DB
	conn  *sql.Conn
	guard *sqlGuard
}

// openSQLite opens f on one connection with the guard installed.
func openSQLite(ctx context.Context, f sqlFile) (*sqliteDB, error) {
	params := sqlParams
	if f.readOnly {
		params = sqlReadOnlyParams
	}
	db, err := sql.Open("sqlite", storesqlite.URI(f.path, params))
	if err != nil {
		return nil, fmt.Errorf("sql: open %s: %w", f.path, err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, sqlFailure(fmt.Errorf("open %s: %w", f.path, err), 0, 0)
	}
	g := &sqlGuard{}
	err = conn.Raw(func(dc any) error {
		r, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return fmt.Errorf("sqlite driver connection %T has no authorizer", dc)
		}
		return r.RegisterAuthorizer(g.authorize)
	})
	if err == nil {
		_, err = sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_ATTACHED, 0)
	}
	if err != nil {
		conn.Close()
		db.Close()
		return nil, fmt.Errorf("sql: guard the connection to %s: %w", f.path, err)
	}
	// SQLite opens by name, after sqlPath checked it: a step running at the
	// same time could have swapped a directory on the way for a link since.
	// SQLite resolves links into the name it reports, so a name other than
	// the one checked means it went through one.
	var opened string
	if err := conn.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&opened); err != nil || opened != f.path {
		conn.Close()
		db.Close()
		return nil, permanent(fmt.Errorf("sql: %s was opened as %q: a link was planted on the way while the step started (%v)", f.path, opened, err))
	}
	if !f.readOnly {
		if _, err := conn.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
			conn.Close()
			db.Close()
			return nil, sqlFailure(fmt.Errorf("open %s: %w", f.path, err), 0, 0)
		}
	}
	return &sqliteDB{db: db, conn: conn, guard: g}, nil
}

func (d *sqliteDB) close() {
	d.conn.Close()
	d.db.Close()
}

// sqlGuard is the authorizer of a sql step's connection. It remembers what
// it refused last, for the step's error: SQLite's own says only "not
// authorized". SQLite calls it while preparing a statement, on the
// goroutine that runs the statement, so it needs no lock.
type sqlGuard struct {
	refused string
}

// sqlRefusedPragmas move the files SQLite writes, or undo defensive mode.
var sqlRefusedPragmas = map[string]bool{
	"temp_store_directory": true,
	"data_store_directory": true,
	"writable_schema":      true,
	"trusted_schema":       true,
}

func (g *sqlGuard) authorize(action sqlite.AuthorizerActionCode, arg1, arg2, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthAttach:
		// VACUUM attaches a database too: its INTO form would write a copy
		// anywhere.
		g.refused = "ATTACH (and VACUUM, which attaches)"
	case sqlite.AuthDetach:
		g.refused = "DETACH"
	case sqlite.AuthFunction:
		switch strings.ToLower(arg2) {
		case "load_extension", "fts3_tokenizer":
			g.refused = arg2 + "()"
		default:
			return sqlite.AuthorizerOK
		}
	case sqlite.AuthPragma:
		if !sqlRefusedPragmas[strings.ToLower(arg1)] {
			return sqlite.AuthorizerOK
		}
		g.refused = "PRAGMA " + arg1
	case sqlite.AuthInsert, sqlite.AuthUpdate, sqlite.AuthDelete:
		if !strings.EqualFold(arg1, "sqlite_dbpage") {
			return sqlite.AuthorizerOK
		}
		g.refused = "writing sqlite_dbpage"
	default:
		return sqlite.AuthorizerOK
	}
	return sqlite.AuthorizerDeny
}

// explain turns the error of a statement the guard refused into one that
// says what and why; other errors pass unchanged.
func (g *sqlGuard) explain(err error) error {
	if g.refused == "" {
		return err
	}
	return permanent(fmt.Errorf("%w (%s is not allowed: a sql step opens only the file of its db, nothing else)", err, g.refused))
}
