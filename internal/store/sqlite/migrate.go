package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema as numbered files, NNNN_name.sql, applied in
// order. A file, once released, is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order, and fails unless
// their versions run 1, 2, 3, … without a gap.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations")
	}
	return ms, nil
}

// migrate applies the migrations the database at db lacks, each in its own
// transaction, and refuses a database that a newer binary migrated further.
// file names the database in that error.
func migrate(ctx context.Context, db *sql.DB, file string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	// user_version mirrors the newest applied migration: reading it costs
	// no write, so opening an up-to-date store takes no lock.
	var quick int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&quick); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if quick > latest {
		return newerSchema(file, quick, latest)
	}
	if quick == latest {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	cur, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if cur > latest {
		return newerSchema(file, cur, latest)
	}
	for _, m := range ms[cur:] {
		if err := apply(ctx, db, m, file, latest); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// apply runs one migration. It reads the version again inside the
// transaction: another process may have migrated since migrate looked.
func apply(ctx context.Context, db *sql.DB, m migration, file string, latest int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if cur > latest {
		return newerSchema(file, cur, latest)
	}
	if cur >= m.version {
		_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(cur))
		return errors.Join(err, tx.Commit())
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		m.version, time.Now().UnixMicro()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version)); err != nil {
		return err
	}
	return tx.Commit()
}

func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func newerSchema(file string, have, know int) error {
	return fmt.Errorf("%s was written by a newer routines (schema %d > %d)", file, have, know)
}
