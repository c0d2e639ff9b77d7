package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// migrationFS holds the schema as numbered files (store.ReadMigrations).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the migrations the database at db lacks, each in its own
// transaction, and refuses a database that a newer binary migrated further.
// file names the database in that error.
func migrate(ctx context.Context, db *sql.DB, file string) error {
	ms, err := store.ReadMigrations(migrationFS)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].Version
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
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// apply runs one migration. It reads the version again inside the
// transaction: another process may have migrated since migrate looked.
func apply(ctx context.Context, db *sql.DB, m store.Migration, file string, latest int) error {
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
	if cur >= m.Version {
		_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(cur))
		return errors.Join(err, tx.Commit())
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		m.Version, time.Now().UnixMicro()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.Version)); err != nil {
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
