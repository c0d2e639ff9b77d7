package spec

import (
	"path/filepath"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// sql checks a sql: action: a query, with no template in it (values go
// through params, bound by SQLite, never into the SQL text), and a db that
// is a SQLite file inside the routine directory or a permissions.write
// path. Symlinks are the sql step's to resolve when it runs.
func (v *validator) sql(p string, a *routine.SQLAction) {
	switch {
	case strings.TrimSpace(a.Query) == "":
		if v.given(p + ".query") {
			v.errorf(p+".query", "%s.query is empty: write the SQL to run", human(p))
		} else {
			v.errorf(p, "%s needs query: the SQL to run", human(p))
		}
	case strings.Contains(a.Query, "{{"):
		v.errorf(p+".query", "%s.query is not templated, so values cannot change the SQL: write ? in the query and the values (templates) under params", human(p))
	}
	db := a.DB
	switch {
	case !v.given(p + ".db"):
		return
	case strings.Contains(db, "{{"):
		v.errorf(p+".db", "%s.db is not templated: write the path of the SQLite file", human(p))
		return
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		v.errorf(p+".db", "sql.db: PostgreSQL is not supported yet; use a SQLite file path")
		return
	}
	path := strings.TrimPrefix(db, "sqlite:")
	if strings.TrimSpace(path) == "" {
		v.errorf(p+".db", "%s.db is empty: write the path of the SQLite file, or leave db out for %s", human(p), routine.DefaultSQLDB)
		return
	}
	if !sqlPathAllowed(v.r.Permissions, path) {
		v.errorf(p+".db", "%s.db %q must stay inside the routine directory, or under a path of permissions.write", human(p), db)
	}
}

// sqlPathAllowed reports whether the SQLite file path, as written, lies in
// the routine directory or under a permissions.write path, before symlinks.
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
		for _, w := range pm.Write {
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
