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
	tokenColumns   = `id, name, hash, role, namespace, created_by, created_at, expires_at, revoked_at`
	tokenInsertSQL = `INSERT INTO api_tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)`
	// tokenBootstrapSQL inserts only into an empty table. Of servers
	// bootstrapping at once, each may see it empty: the lock makes them
	// take turns, so that the later ones see the first one's token.
	tokenLockSQL      = `LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE`
	tokenBootstrapSQL = `INSERT INTO api_tokens (` + tokenColumns + `)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, NULL WHERE NOT EXISTS (SELECT 1 FROM api_tokens)`
	tokenByHashSQL = `SELECT ` + tokenColumns + ` FROM api_tokens WHERE hash = $1`
	tokenListSQL   = `SELECT ` + tokenColumns + ` FROM api_tokens WHERE $1 = '' OR namespace = $1 ORDER BY name`
	tokenRevokeSQL = `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3)
		WHERE (name = $1 OR id = $1) AND ($2 = '' OR namespace = $2) RETURNING ` + tokenColumns
	namespaceColumns = `name, regions, max_running, max_queued, updated_at`
	namespacePutSQL  = `INSERT INTO namespaces (` + namespaceColumns + `) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET regions = excluded.regions, max_running = excluded.max_running,
			max_queued = excluded.max_queued, updated_at = excluded.updated_at`
	actionInsertSQL = `INSERT INTO audit_log (time, actor, role, namespace, source, action, target, outcome, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
)

// TokenCreate records a new token.
func (s *Store) TokenCreate(ctx context.Context, p *store.TokenCreateParams) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, tokenInsertSQL+` RETURNING `+tokenColumns, tokenArgs(p)...))
	if err != nil {
		if errors.Is(translate(err), routine.ErrConflict) {
			return nil, fmt.Errorf("create token %s: the name is taken: %w", p.Name, routine.ErrConflict)
		}
		return nil, fmt.Errorf("create token %s: %w", p.Name, err)
	}
	return t, nil
}

// TokenBootstrap records p's token when there is none.
func (s *Store) TokenBootstrap(ctx context.Context, p *store.TokenCreateParams) (bool, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, tokenLockSQL); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, tokenBootstrapSQL, tokenArgs(p)...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	return n > 0, nil
}

func tokenArgs(p *store.TokenCreateParams) []any {
	return []any{p.ID, p.Name, p.Hash, p.Role, p.Namespace, p.CreatedBy, p.Now, p.ExpiresAt}
}

// TokenByHash returns the token with this hash.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, tokenByHashSQL, hash))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("token: %w", routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// TokenList returns the tokens, by name.
func (s *Store) TokenList(ctx context.Context, p *store.TokenListParams) ([]*store.Token, error) {
	rows, err := s.pool.Query(ctx, tokenListSQL, p.Namespace)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Token, error) { return scanToken(row) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return list, nil
}

// TokenRevoke revokes a token by name or id.
func (s *Store) TokenRevoke(ctx context.Context, p *store.TokenRevokeParams) (*store.Token, error) {
	// The notification goes out when the revocation commits: the servers
	// that cache tokens drop theirs then.
	var t *store.Token
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if t, err = scanToken(tx.QueryRow(ctx, tokenRevokeSQL, p.Token, p.Namespace, p.Now)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, '')", tokenChannel)
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("revoke token %s: %w", p.Token, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("revoke token %s: %w", p.Token, err)
	}
	return t, nil
}

func scanToken(row pgx.Row) (*store.Token, error) {
	var t store.Token
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Role, &t.Namespace, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	for _, p := range []*time.Time{t.ExpiresAt, t.RevokedAt} {
		if p != nil {
			*p = p.UTC()
		}
	}
	return &t, nil
}

// NamespacePut creates or replaces a namespace's whole policy.
func (s *Store) NamespacePut(ctx context.Context, ns *store.Namespace) error {
	regions := ns.Regions
	if regions == nil {
		regions = []string{}
	}
	if _, err := s.pool.Exec(ctx, namespacePutSQL, ns.Name, regions, ns.MaxRunning, ns.MaxQueued, ns.UpdatedAt); err != nil {
		return fmt.Errorf("put namespace %s: %w", ns.Name, err)
	}
	return nil
}

// NamespaceGet returns a namespace's policy.
func (s *Store) NamespaceGet(ctx context.Context, name string) (*store.Namespace, error) {
	ns, err := scanNamespace(s.pool.QueryRow(ctx, `SELECT `+namespaceColumns+` FROM namespaces WHERE name = $1`, name))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("namespace %s: %w", name, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return ns, nil
}

// NamespaceList returns the namespaces with a policy.
func (s *Store) NamespaceList(ctx context.Context) ([]*store.Namespace, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+namespaceColumns+` FROM namespaces ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Namespace, error) { return scanNamespace(row) })
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return list, nil
}

func scanNamespace(row pgx.Row) (*store.Namespace, error) {
	var ns store.Namespace
	if err := row.Scan(&ns.Name, &ns.Regions, &ns.MaxRunning, &ns.MaxQueued, &ns.UpdatedAt); err != nil {
		return nil, err
	}
	if len(ns.Regions) == 0 {
		ns.Regions = nil
	}
	ns.UpdatedAt = ns.UpdatedAt.UTC()
	return &ns, nil
}

// ActionAppend appends a record to the trail of actions.
func (s *Store) ActionAppend(ctx context.Context, a *store.Action) error {
	if _, err := s.pool.Exec(ctx, actionInsertSQL, a.Time, a.Actor, a.Role, a.Namespace, a.Source, a.Action, a.Target,
		a.Outcome, a.Detail); err != nil {
		return fmt.Errorf("append action: %w", err)
	}
	return nil
}

// ActionList returns records of the trail, oldest first.
func (s *Store) ActionList(ctx context.Context, p *store.ActionListParams) ([]*store.Action, error) {
	var w where
	if !p.Since.IsZero() {
		w.add("time >= ?", p.Since)
	}
	if p.Actor != "" {
		w.add("actor = ?", p.Actor)
	}
	if p.Namespace != "" {
		w.add("namespace = ?", p.Namespace)
	}
	q := "SELECT seq, time, actor, role, namespace, source, action, target, outcome, detail FROM audit_log" + w.sql() + " ORDER BY seq DESC"
	if p.Limit > 0 {
		q += " LIMIT " + w.arg(p.Limit)
	}
	rows, err := s.pool.Query(ctx, "SELECT * FROM ("+q+") a ORDER BY seq", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Action, error) {
		var a store.Action
		err := row.Scan(&a.Seq, &a.Time, &a.Actor, &a.Role, &a.Namespace, &a.Source, &a.Action, &a.Target, &a.Outcome, &a.Detail)
		a.Time = a.Time.UTC()
		return &a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return list, nil
}

var _ store.Teams = (*Store)(nil)
