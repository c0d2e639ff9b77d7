package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	vaultKeyInitSQL = `INSERT INTO vault_key (id, wrapped, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`
	vaultKeyGetSQL  = `SELECT wrapped FROM vault_key WHERE id = 1`
	secretPutSQL    = `INSERT INTO secrets (namespace, name, ciphertext, version, created_at, rotated_at) VALUES ($1, $2, $3, 1, $4, $4)
		ON CONFLICT (namespace, name) DO UPDATE SET
			ciphertext = excluded.ciphertext, version = secrets.version + 1, rotated_at = excluded.rotated_at
		RETURNING version`
	secretGetSQL    = `SELECT namespace, name, ciphertext, version, created_at, rotated_at FROM secrets WHERE namespace = $1 AND name = $2`
	secretListSQL   = `SELECT namespace, name, version, created_at, rotated_at FROM secrets WHERE namespace = $1 ORDER BY name`
	secretDeleteSQL = `DELETE FROM secrets WHERE namespace = $1 AND name = $2`
	auditInsertSQL  = `INSERT INTO secret_audit (time, action, secret, provider, routine, run_id, ok, error)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::boolean[], $8::text[])`
)

// VaultKeyInit stores the vault's wrapped data key unless one is there,
// and returns the stored one. The read is a statement after the insert,
// in the same pipeline: it sees the key of a concurrent caller whose
// insert this one's waited for.
func (s *Store) VaultKeyInit(ctx context.Context, wrapped []byte, now time.Time) ([]byte, error) {
	var (
		stored []byte
		b      pgx.Batch
	)
	b.Queue(vaultKeyInitSQL, wrapped, now)
	b.Queue(vaultKeyGetSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&stored) })
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("init vault key: %w", err)
	}
	return stored, nil
}

// VaultKeyGet returns the vault's wrapped data key.
func (s *Store) VaultKeyGet(ctx context.Context) ([]byte, error) {
	var wrapped []byte
	switch err := s.pool.QueryRow(ctx, vaultKeyGetSQL).Scan(&wrapped); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("get vault key: %w", routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get vault key: %w", err)
	}
	return wrapped, nil
}

// SecretPut stores a secret's ciphertext and returns its version.
func (s *Store) SecretPut(ctx context.Context, p *store.SecretPutParams) (int, error) {
	var version int
	if err := s.pool.QueryRow(ctx, secretPutSQL, p.Namespace, p.Name, p.Ciphertext, p.Now).Scan(&version); err != nil {
		return 0, fmt.Errorf("put secret %s: %w", p.Name, err)
	}
	return version, nil
}

// SecretGet returns a stored secret with its ciphertext.
func (s *Store) SecretGet(ctx context.Context, namespace, name string) (*store.Secret, error) {
	var sec store.Secret
	err := s.pool.QueryRow(ctx, secretGetSQL, namespace, name).Scan(&sec.Namespace, &sec.Name, &sec.Ciphertext, &sec.Version, &sec.CreatedAt, &sec.RotatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("get secret %s: %w", name, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	sec.CreatedAt, sec.RotatedAt = sec.CreatedAt.UTC(), sec.RotatedAt.UTC()
	return &sec, nil
}

// SecretList returns the stored secrets without their ciphertext.
func (s *Store) SecretList(ctx context.Context, namespace string) ([]*store.Secret, error) {
	rows, err := s.pool.Query(ctx, secretListSQL, namespace)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	list := []*store.Secret{}
	for rows.Next() {
		var sec store.Secret
		if err := rows.Scan(&sec.Namespace, &sec.Name, &sec.Version, &sec.CreatedAt, &sec.RotatedAt); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		sec.CreatedAt, sec.RotatedAt = sec.CreatedAt.UTC(), sec.RotatedAt.UTC()
		list = append(list, &sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return list, nil
}

// SecretDelete removes a stored secret.
func (s *Store) SecretDelete(ctx context.Context, namespace, name string) (bool, error) {
	ct, err := s.pool.Exec(ctx, secretDeleteSQL, namespace, name)
	if err != nil {
		return false, fmt.Errorf("delete secret %s: %w", name, err)
	}
	return ct.RowsAffected() > 0, nil
}

// AuditAppend appends audit records in one statement.
func (s *Store) AuditAppend(ctx context.Context, records []*store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	n := len(records)
	var (
		times                                         = make([]time.Time, n)
		actions, secrets, providers, routines, runIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		oks                                           = make([]bool, n)
		errs                                          = make([]string, n)
	)
	for i, r := range records {
		times[i], actions[i], secrets[i], providers[i], routines[i], runIDs[i], oks[i], errs[i] =
			r.Time, r.Action, r.Secret, r.Provider, r.Routine, r.RunID, r.OK, r.Error
	}
	if _, err := s.pool.Exec(ctx, auditInsertSQL, times, actions, secrets, providers, routines, runIDs, oks, errs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// AuditList returns audit records, oldest first: the newest p.Limit of
// those that match, when p.Limit is set.
func (s *Store) AuditList(ctx context.Context, p *store.AuditListParams) ([]*store.AuditRecord, error) {
	var w where
	if p.Secret != "" {
		w.add("secret = ?", p.Secret)
	}
	if !p.Since.IsZero() {
		w.add("time >= ?", p.Since)
	}
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	// The newest Limit (LIMIT NULL is none), then oldest first.
	q := "SELECT time, action, secret, provider, routine, run_id, ok, error FROM (" +
		"SELECT * FROM secret_audit" + w.sql() + " ORDER BY seq DESC LIMIT " + w.arg(limit) + ") newest ORDER BY seq"
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	list := []*store.AuditRecord{}
	for rows.Next() {
		var r store.AuditRecord
		if err := rows.Scan(&r.Time, &r.Action, &r.Secret, &r.Provider, &r.Routine, &r.RunID, &r.OK, &r.Error); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		r.Time = r.Time.UTC()
		list = append(list, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return list, nil
}
