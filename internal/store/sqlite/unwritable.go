package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/store"
)

// writer is the group commit of a store with the errors of a storage
// that refuses writes translated at the edge (store.UnwritableError) and
// told to the store's Writability. Its write shadows the group commit's,
// so every write of the driver goes through it.
type writer struct {
	*groupCommit
	path        string // the store's file, named in the errors
	writability store.Writability
}

// write is groupCommit.write, with a refusal of the storage translated.
func (w *writer) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	err := w.groupCommit.write(ctx, fn)
	if err == nil {
		return nil
	}
	return w.writability.Refused(w.unwritable(err), time.Now())
}

// unwritable returns err as a store.UnwritableError when SQLite says the
// storage refused the write, else err. SQLite undoes the whole
// transaction on these errors, so nothing of the write was kept.
func (w *writer) unwritable(err error) error {
	var e *sqlitedrv.Error
	if !errors.As(err, &e) {
		return err
	}
	var cause string
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		cause = "disk full"
	case sqlite3.SQLITE_IOERR:
		cause = "I/O error"
	case sqlite3.SQLITE_READONLY:
		cause = "read-only file or file system"
	case sqlite3.SQLITE_CANTOPEN:
		cause = "a file of the store cannot be opened"
	default:
		return err
	}
	return &store.UnwritableError{Cause: cause, Path: w.path, Err: err}
}

// Writability tells when the storage of the store refuses writes
// (store.WriteProber).
func (s *Store) Writability() *store.Writability { return &s.gc.writability }

// ProbeWrite writes the schema version as it is (store.WriteProber).
// Unlike a row rewritten as it was, which SQLite leaves alone, it always
// writes the database's first page to the write-ahead log: it takes the
// space of a page when the log must grow.
func (s *Store) ProbeWrite(ctx context.Context) error {
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v))
		return err
	})
	if err == nil {
		s.gc.writability.Wrote(time.Now())
	}
	return err
}

var _ store.WriteProber = (*Store)(nil)
