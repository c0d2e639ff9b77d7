package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/store"
)

// migrationFS holds the schema as numbered files (store.ReadMigrations).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

func readMigrations() ([]store.Migration, error) { return store.ReadMigrations(migrationFS) }

// keepBackups is how many of the backups taken before migrations are
// kept in the store's backups/ directory: the newest ones.
const keepBackups = 3

// migrate applies the migrations the database at db (the file at the
// absolute path abs) lacks, each in its own transaction, and refuses a
// database that a newer binary migrated further. Before it changes a
// store that has a schema, it backs it up into backups/ beside it
// (backupBeforeMigrate).
func migrate(ctx context.Context, db *sql.DB, abs string) error {
	file := filepath.Base(abs)
	ms, err := readMigrations()
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
	if cur > 0 && cur < latest {
		if err := backupBeforeMigrate(ctx, abs, cur, time.Now()); err != nil {
			return err
		}
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
	return fmt.Errorf("%s was written by a newer routines (schema %d > %d): run that version of routines or a newer one; to go back to this one, restore the backup taken before the upgrade with `routines restore .routines/backups/state-v%d-….db` (stop the daemon first; docs/operations.md)", file, have, know, know)
}

// backupBeforeMigrate copies the store at abs, of schema version cur,
// to backups/state-v<cur>-<time>.db beside it (with its .sha256, so
// `routines restore` takes it as it is), and removes all but the newest
// keepBackups of them. A store that cannot be backed up is not migrated.
func backupBeforeMigrate(ctx context.Context, abs string, cur int, now time.Time) error {
	dir := filepath.Join(filepath.Dir(abs), "backups")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("back up before migrating: %w", err)
	}
	name := fmt.Sprintf("state-v%d-%s.db", cur, now.UTC().Format("20060102T150405.000000Z"))
	if _, err := Backup(ctx, abs, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("back up before migrating (nothing was changed; free space or make %s writable, then start again): %w", dir, err)
	}
	return pruneBackups(dir)
}

// pruneBackups removes the oldest backups taken before migrations, with
// their checksums, beyond keepBackups.
func pruneBackups(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "state-v*-*.db"))
	if err != nil {
		return err
	}
	type backup struct {
		name string
		mod  time.Time
	}
	var bs []backup
	for _, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			continue // removed meanwhile
		}
		bs = append(bs, backup{n, fi.ModTime()})
	}
	slices.SortFunc(bs, func(a, b backup) int { return b.mod.Compare(a.mod) })
	var errs []error
	for _, b := range bs[min(keepBackups, len(bs)):] {
		for _, f := range []string{b.name, b.name + checksumExt} {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
