package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/routines-dev/routines/internal/store"
)

// migrationFS holds the schema as numbered files (store.ReadMigrations).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLock is the advisory lock (class, key) that Open holds while it
// migrates, so that servers starting at once migrate once: the others
// wait, then find the schema up to date.
const migrateLock = "x'52540001'::integer, 0"

// migrate applies the migrations the database lacks, in one transaction
// under migrateLock, and refuses a database that a newer binary migrated
// further. An up-to-date database is seen without the lock.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := store.ReadMigrations(migrationFS)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].Version
	db := pool.Config().ConnConfig.Database
	cur, err := schemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if cur > latest {
		return newerSchema(db, cur, latest)
	}
	if cur == latest {
		return nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+migrateLock+")"); err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	// Another server may have migrated while this one waited.
	if cur, err = schemaVersion(ctx, tx); err != nil {
		return err
	}
	if cur > latest {
		return newerSchema(db, cur, latest)
	}
	for _, m := range ms[cur:] {
		// No arguments: pgx sends the file as a simple query, which may
		// hold many statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}

// schemaVersion returns the newest migration applied, 0 for a database
// without schema_migrations.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func newerSchema(db string, have, know int) error {
	return fmt.Errorf("database %s was migrated by a newer routines (schema %d > %d): upgrade this binary to the version of the servers that use it", db, have, know)
}
