package store

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Migration is one step of a driver's schema: a file NNNN_name.sql of its
// embedded migrations, applied in order. A file, once released, is never
// edited: a change is a new file.
type Migration struct {
	Version int
	Name    string // the file's name
	SQL     string
}

// ReadMigrations returns the migrations in the directory "migrations" of
// fsys in order, and fails unless their versions run 1, 2, 3, … without
// a gap.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations")
	}
	return ms, nil
}
