package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

const (
	tokenColumns   = `id, name, hash, role, namespace, created_by, created_at, expires_at, revoked_at`
	tokenInsertSQL = `INSERT INTO api_tokens (` + tokenColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`
	// tokenBootstrapSQL inserts only into an empty table; the write lock
	// of the transaction makes the look and the insert one step.
	tokenBootstrapSQL = `INSERT INTO api_tokens (` + tokenColumns + `)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, NULL WHERE NOT EXISTS (SELECT 1 FROM api_tokens)`
	tokenByHashSQL   = `SELECT ` + tokenColumns + ` FROM api_tokens WHERE hash = ?`
	tokenFindSQL     = `SELECT ` + tokenColumns + ` FROM api_tokens WHERE (name = ?1 OR id = ?1) AND (?2 = '' OR namespace = ?2)`
	tokenRevokeSQL   = `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`
	namespaceColumns = `name, regions, max_running, max_queued, updated_at`
	namespacePutSQL  = `INSERT INTO namespaces (` + namespaceColumns + `) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET regions = excluded.regions, max_running = excluded.max_running,
			max_queued = excluded.max_queued, updated_at = excluded.updated_at`
	actionInsertSQL = `INSERT INTO audit_log (time, actor, role, namespace, source, action, target, outcome, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// TokenCreate records a new token.
func (s *Store) TokenCreate(ctx context.Context, p *store.TokenCreateParams) (*store.Token, error) {
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, tokenInsertSQL, tokenArgs(p)...)
		return err
	})
	if err != nil {
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return nil, fmt.Errorf("create token %s: the name is taken: %w", p.Name, routine.ErrConflict)
		}
		return nil, fmt.Errorf("create token %s: %w", p.Name, err)
	}
	return tokenOf(p), nil
}

// TokenBootstrap records p's token when there is none.
func (s *Store) TokenBootstrap(ctx context.Context, p *store.TokenCreateParams) (bool, error) {
	var n int64
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, tokenBootstrapSQL, tokenArgs(p)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	return n > 0, nil
}

func tokenArgs(p *store.TokenCreateParams) []any {
	return []any{p.ID, p.Name, p.Hash, p.Role, p.Namespace, p.CreatedBy, p.Now.UnixMicro(), micros(p.ExpiresAt)}
}

// tokenOf is the token p creates, as the store gives it back.
func tokenOf(p *store.TokenCreateParams) *store.Token {
	t := &store.Token{ID: p.ID, Name: p.Name, Hash: p.Hash, Role: p.Role, Namespace: p.Namespace, CreatedBy: p.CreatedBy,
		CreatedAt: fromMicros(p.Now.UnixMicro())}
	if p.ExpiresAt != nil {
		e := fromMicros(p.ExpiresAt.UnixMicro())
		t.ExpiresAt = &e
	}
	return t
}

// TokenByHash returns the token with this hash.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, tokenByHashSQL, hash))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("token: %w", routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// TokenList returns the tokens, by name.
func (s *Store) TokenList(ctx context.Context, p *store.TokenListParams) ([]*store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE ?1 = '' OR namespace = ?1 ORDER BY name`, p.Namespace)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	list := []*store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		list = append(list, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return list, nil
}

// TokenRevoke revokes a token by name or id.
func (s *Store) TokenRevoke(ctx context.Context, p *store.TokenRevokeParams) (*store.Token, error) {
	var t *store.Token
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if t, err = scanToken(tx.QueryRowContext(ctx, tokenFindSQL, p.Token, p.Namespace)); err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, tokenRevokeSQL, p.Now.UnixMicro(), t.ID); err != nil {
			return err
		}
		now := fromMicros(p.Now.UnixMicro())
		t.RevokedAt = &now
		return nil
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("revoke token %s: %w", p.Token, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("revoke token %s: %w", p.Token, err)
	}
	s.revocations.Wake()
	return t, nil
}

// TokenRevocations returns a channel woken by this store's revocations.
func (s *Store) TokenRevocations(ctx context.Context) <-chan struct{} {
	return s.revocations.Subscribe(ctx)
}

func scanToken(row interface{ Scan(...any) error }) (*store.Token, error) {
	var (
		t                store.Token
		created          int64
		expires, revoked sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Role, &t.Namespace, &t.CreatedBy, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromNullMicros(expires), fromNullMicros(revoked)
	return &t, nil
}

// NamespacePut creates or replaces a namespace's whole policy.
func (s *Store) NamespacePut(ctx context.Context, ns *store.Namespace) error {
	regions, err := json.Marshal(nonNil(ns.Regions))
	if err != nil {
		return err
	}
	err = s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, namespacePutSQL, ns.Name, string(regions), ns.MaxRunning, ns.MaxQueued, ns.UpdatedAt.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("put namespace %s: %w", ns.Name, err)
	}
	return nil
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// NamespaceGet returns a namespace's policy.
func (s *Store) NamespaceGet(ctx context.Context, name string) (*store.Namespace, error) {
	ns, err := scanNamespace(s.r.QueryRowContext(ctx, `SELECT `+namespaceColumns+` FROM namespaces WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("namespace %s: %w", name, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return ns, nil
}

// NamespaceList returns the namespaces with a policy.
func (s *Store) NamespaceList(ctx context.Context) ([]*store.Namespace, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+namespaceColumns+` FROM namespaces ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	defer rows.Close()
	list := []*store.Namespace{}
	for rows.Next() {
		ns, err := scanNamespace(rows)
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		list = append(list, ns)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return list, nil
}

func scanNamespace(row interface{ Scan(...any) error }) (*store.Namespace, error) {
	var (
		ns      store.Namespace
		regions string
		updated int64
	)
	if err := row.Scan(&ns.Name, &regions, &ns.MaxRunning, &ns.MaxQueued, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(regions), &ns.Regions); err != nil {
		return nil, err
	}
	if len(ns.Regions) == 0 {
		ns.Regions = nil
	}
	ns.UpdatedAt = fromMicros(updated)
	return &ns, nil
}

// ActionAppend appends a record to the trail of actions.
func (s *Store) ActionAppend(ctx context.Context, a *store.Action) error {
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, actionInsertSQL, a.Time.UnixMicro(), a.Actor, a.Role, a.Namespace, a.Source,
			a.Action, a.Target, a.Outcome, a.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("append action: %w", err)
	}
	return nil
}

// ActionList returns records of the trail, oldest first.
func (s *Store) ActionList(ctx context.Context, p *store.ActionListParams) ([]*store.Action, error) {
	var (
		where []string
		args  []any
	)
	for _, f := range []struct {
		cond string
		v    any
		on   bool
	}{
		{"time >= ?", p.Since.UnixMicro(), !p.Since.IsZero()},
		{"actor = ?", p.Actor, p.Actor != ""},
		{"namespace = ?", p.Namespace, p.Namespace != ""},
	} {
		if f.on {
			where = append(where, f.cond)
			args = append(args, f.v)
		}
	}
	q := "SELECT seq, time, actor, role, namespace, source, action, target, outcome, detail FROM audit_log"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	q = "SELECT * FROM (" + q + " ORDER BY seq DESC LIMIT ?) ORDER BY seq"
	rows, err := s.r.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	list := []*store.Action{}
	for rows.Next() {
		var (
			a store.Action
			t int64
		)
		if err := rows.Scan(&a.Seq, &t, &a.Actor, &a.Role, &a.Namespace, &a.Source, &a.Action, &a.Target, &a.Outcome, &a.Detail); err != nil {
			return nil, fmt.Errorf("list actions: %w", err)
		}
		a.Time = fromMicros(t)
		list = append(list, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return list, nil
}

var _ store.Teams = (*Store)(nil)
