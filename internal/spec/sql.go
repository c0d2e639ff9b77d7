package spec

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// sql checks a sql: action: a query, with no template in it (values go
// through params, bound by the database, never into the SQL text), and a
// db that is either a SQLite file inside the routine directory or a
// permissions.write path, or one reference to a declared secret holding a
// PostgreSQL URL. Symlinks are the sql step's to resolve when it runs,
// and the secret's value its to check.
func (v *validator) sql(p string, a *routine.SQLAction) {
	db := a.DB
	pg := secretOnly.MatchString(db)
	switch {
	case strings.TrimSpace(a.Query) == "":
		if v.given(p + ".query") {
			v.errorf(p+".query", "%s.query is empty: write the SQL to run", human(p))
		} else {
			v.errorf(p, "%s needs query: the SQL to run", human(p))
		}
	case strings.Contains(a.Query, "{{") && pg:
		v.errorf(p+".query", "%s.query is not templated, so values cannot change the SQL: write $1, $2 … in the query and the values (templates) under params", human(p))
	case strings.Contains(a.Query, "{{"):
		v.errorf(p+".query", "%s.query is not templated, so values cannot change the SQL: write ? in the query and the values (templates) under params", human(p))
	}
	switch sm := secretOnly.FindStringSubmatch(db); {
	case !v.given(p + ".db"):
		return
	case sm != nil && !v.declaredSecret(sm[1]):
		v.errorf(p+".db", "%s.db: %s is not a declared secret: %s", human(p), sm[1], v.undeclared(sm[1], nil))
		return
	case sm != nil:
		return
	case strings.Contains(db, "{{"):
		v.errorf(p+".db", "%s.db is not templated: write the path of the SQLite file, or one secret reference such as \"{{DATABASE_URL}}\" whose value is a postgres:// URL", human(p))
		return
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		v.errorf(p+".db", "%s.db: a PostgreSQL URL holds a password, so it does not go in routine.yaml: declare a secret (secrets: [DATABASE_URL]) whose value is the URL, and write db: \"{{DATABASE_URL}}\"", human(p))
		return
	}
	path := strings.TrimPrefix(db, "sqlite:")
	if strings.TrimSpace(path) == "" {
		v.errorf(p+".db", "%s.db is empty: write the path of the SQLite file, or leave db out for %s", human(p), routine.DefaultSQLDB)
		return
	}
	if !sqlPathAllowed(v.r.Permissions, path) {
		v.errorf(p+".db", "%s.db %q must stay inside the routine directory, or under a path of permissions.write (or permissions.read, to only read it)", human(p), db)
	}
}

// sqlPathAllowed reports whether the SQLite file path, as written, lies in
// the routine directory or under a permissions.write path (or, opened
// read-only, a permissions.read path), before symlinks.
// It resolves relative paths against a stand-in routine directory, so it
// needs no file system.
func sqlPathAllowed(pm *routine.Permissions, path string) bool {
	const dir = "/routine-dir"
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, abs)
	}
	abs = filepath.Clean(abs)
	roots := []string{dir}
	if pm != nil {
		for _, w := range append(slices.Clip(pm.Write), pm.Read...) {
			if strings.TrimSpace(w) == "" {
				continue
			}
			if !filepath.IsAbs(w) {
				w = filepath.Join(dir, w)
			}
			roots = append(roots, filepath.Clean(w))
		}
	}
	for _, root := range roots {
		if rel, err := filepath.Rel(root, abs); err == nil && rel != "." && filepath.IsLocal(rel) {
			return true
		}
	}
	return false
}
