package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	vaultKeyInitSQL = `INSERT INTO vault_key (id, wrapped, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`
	vaultKeyGetSQL  = `SELECT wrapped FROM vault_key WHERE id = 1`
	secretPutSQL    = `INSERT INTO secrets (namespace, name, ciphertext, version, created_at, rotated_at) VALUES (?1, ?2, ?3, 1, ?4, ?4)
		ON CONFLICT (namespace, name) DO UPDATE SET
			ciphertext = excluded.ciphertext, version = version + 1, rotated_at = excluded.rotated_at
		RETURNING version`
	secretGetSQL    = `SELECT namespace, name, ciphertext, version, created_at, rotated_at FROM secrets WHERE namespace = ? AND name = ?`
	secretListSQL   = `SELECT namespace, name, version, created_at, rotated_at FROM secrets WHERE namespace = ? ORDER BY name`
	secretDeleteSQL = `DELETE FROM secrets WHERE namespace = ? AND name = ?`
	auditInsertSQL  = `INSERT INTO secret_audit (time, action, secret, provider, routine, run_id, ok, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
)

// VaultKeyInit stores the vault's wrapped data key unless one is there,
// and returns the stored one.
func (s *Store) VaultKeyInit(ctx context.Context, wrapped []byte, now time.Time) ([]byte, error) {
	var stored []byte
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, vaultKeyInitSQL, wrapped, now.UnixMicro()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, vaultKeyGetSQL).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("init vault key: %w", err)
	}
	return stored, nil
}

// VaultKeyGet returns the vault's wrapped data key.
func (s *Store) VaultKeyGet(ctx context.Context) ([]byte, error) {
	var wrapped []byte
	err := s.r.QueryRowContext(ctx, vaultKeyGetSQL).Scan(&wrapped)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("get vault key: %w", routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get vault key: %w", err)
	}
	return wrapped, nil
}

// SecretPut stores a secret's ciphertext and returns its version.
func (s *Store) SecretPut(ctx context.Context, p *store.SecretPutParams) (int, error) {
	var version int
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, secretPutSQL, p.Namespace, p.Name, p.Ciphertext, p.Now.UnixMicro()).Scan(&version)
	})
	if err != nil {
		return 0, fmt.Errorf("put secret %s: %w", p.Name, err)
	}
	return version, nil
}

// SecretGet returns a stored secret with its ciphertext.
func (s *Store) SecretGet(ctx context.Context, namespace, name string) (*store.Secret, error) {
	var (
		sec              store.Secret
		created, rotated int64
	)
	st, err := s.readStmt(ctx, &s.secretGet, secretGetSQL)
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	err = st.QueryRowContext(ctx, namespace, name).Scan(&sec.Namespace, &sec.Name, &sec.Ciphertext, &sec.Version, &created, &rotated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("get secret %s: %w", name, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	sec.CreatedAt, sec.RotatedAt = fromMicros(created), fromMicros(rotated)
	return &sec, nil
}

// SecretList returns the stored secrets without their ciphertext.
func (s *Store) SecretList(ctx context.Context, namespace string) ([]*store.Secret, error) {
	rows, err := s.r.QueryContext(ctx, secretListSQL, namespace)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	list := []*store.Secret{}
	for rows.Next() {
		var (
			sec              store.Secret
			created, rotated int64
		)
		if err := rows.Scan(&sec.Namespace, &sec.Name, &sec.Version, &created, &rotated); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		sec.CreatedAt, sec.RotatedAt = fromMicros(created), fromMicros(rotated)
		list = append(list, &sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return list, nil
}

// SecretDelete removes a stored secret.
func (s *Store) SecretDelete(ctx context.Context, namespace, name string) (bool, error) {
	var n int64
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, secretDeleteSQL, namespace, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("delete secret %s: %w", name, err)
	}
	return n > 0, nil
}

// AuditAppend appends audit records in one transaction.
func (s *Store) AuditAppend(ctx context.Context, records []*store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, s.auditInsert)
		for _, r := range records {
			if _, err := ins.ExecContext(ctx, r.Time.UnixMicro(), r.Action, r.Secret, r.Provider, r.Routine, r.RunID,
				r.OK, r.Error); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// AuditList returns audit records, oldest first: the newest p.Limit of
// those that match, when p.Limit is set.
func (s *Store) AuditList(ctx context.Context, p *store.AuditListParams) ([]*store.AuditRecord, error) {
	var (
		where []string
		args  []any
	)
	if p.Secret != "" {
		where = append(where, "secret = ?")
		args = append(args, p.Secret)
	}
	if !p.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, p.Since.UnixMicro())
	}
	q := "SELECT seq, time, action, secret, provider, routine, run_id, ok, error FROM secret_audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	// The newest Limit (LIMIT -1 is none), then oldest first.
	q = "SELECT * FROM (" + q + " ORDER BY seq DESC LIMIT ?) ORDER BY seq"
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	list := []*store.AuditRecord{}
	for rows.Next() {
		var (
			r   store.AuditRecord
			seq int64
			t   int64
		)
		if err := rows.Scan(&seq, &t, &r.Action, &r.Secret, &r.Provider, &r.Routine, &r.RunID, &r.OK, &r.Error); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		r.Time = fromMicros(t)
		list = append(list, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return list, nil
}
