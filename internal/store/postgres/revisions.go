package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// revisionColumns are the columns scanRevision reads.
const revisionColumns = `d.seq, d.routine, d.namespace, d.hash, octet_length(b.data), d.author, d.message, d.git_commit, d.rollback_of, d.created_at`

const (
	// revisionLockSQL serializes the pushes of one routine, so that of
	// identical pushes at once one records a deployment.
	revisionLockSQL   = `SELECT pg_advisory_xact_lock(hashtextextended('routines_revisions:' || $1, 0))`
	bundleInsertSQL   = `INSERT INTO bundles (hash, data, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING`
	bundleGetSQL      = `SELECT data FROM bundles WHERE hash = $1`
	bundleExistsSQL   = `SELECT EXISTS (SELECT 1 FROM bundles WHERE hash = $1)`
	deployInsertSQL   = `INSERT INTO deployments (routine, hash, author, message, git_commit, rollback_of, created_at, namespace) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	revisionLatestSQL = `SELECT ` + revisionColumns + ` FROM deployments d JOIN bundles b ON b.hash = d.hash
		WHERE d.routine = $1 ORDER BY d.seq DESC LIMIT 1`
	revisionListSQL = `SELECT ` + revisionColumns + ` FROM deployments d JOIN bundles b ON b.hash = d.hash
		WHERE d.routine = $1 ORDER BY d.seq DESC LIMIT $2`
	revisionCurrentSQL = `SELECT ` + revisionColumns + ` FROM deployments d JOIN bundles b ON b.hash = d.hash
		WHERE d.seq IN (SELECT max(seq) FROM deployments GROUP BY routine) ORDER BY d.routine`
)

// RevisionPut stores a bundle once and makes it the routine's current
// revision, unless it is already.
func (s *Store) RevisionPut(ctx context.Context, p *store.RevisionPutParams) (*store.Revision, bool, error) {
	var (
		rev     *store.Revision
		created bool
	)
	ns := cmp.Or(p.Namespace, store.DefaultNamespace)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, revisionLockSQL, p.Routine); err != nil {
			return err
		}
		cur, err := scanRevision(tx.QueryRow(ctx, revisionLatestSQL, p.Routine))
		switch {
		case err == nil && cur.Namespace != ns:
			return fmt.Errorf("routine %s belongs to another namespace: %w", p.Routine, routine.ErrConflict)
		case err == nil && cur.Hash == p.Hash:
			rev = cur
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if p.Bundle != nil {
			if _, err := tx.Exec(ctx, bundleInsertSQL, p.Hash, p.Bundle, p.Now); err != nil {
				return err
			}
		} else {
			var ok bool
			if err := tx.QueryRow(ctx, bundleExistsSQL, p.Hash).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("bundle %s: %w", p.Hash, routine.ErrNotFound)
			}
		}
		if _, err := tx.Exec(ctx, deployInsertSQL, p.Routine, p.Hash, p.Author, p.Message, p.GitCommit, p.RollbackOf, p.Now, ns); err != nil {
			return err
		}
		created = true
		rev, err = scanRevision(tx.QueryRow(ctx, revisionLatestSQL, p.Routine))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("put revision of %s: %w", p.Routine, err)
	}
	return rev, created, nil
}

// RevisionBundle returns a stored bundle's bytes.
func (s *Store) RevisionBundle(ctx context.Context, hash string) ([]byte, error) {
	var data []byte
	switch err := s.pool.QueryRow(ctx, bundleGetSQL, hash).Scan(&data); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("get bundle %s: %w", hash, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get bundle %s: %w", hash, err)
	}
	return data, nil
}

// RevisionList returns a routine's deployment records, newest first.
func (s *Store) RevisionList(ctx context.Context, p *store.RevisionListParams) ([]*store.Revision, error) {
	var limit *int
	if p.Limit > 0 {
		limit = &p.Limit
	}
	return s.revisions(ctx, "list revisions", revisionListSQL, p.Routine, limit)
}

// RevisionCurrent returns each routine's current revision.
func (s *Store) RevisionCurrent(ctx context.Context) ([]*store.Revision, error) {
	return s.revisions(ctx, "current revisions", revisionCurrentSQL)
}

func (s *Store) revisions(ctx context.Context, what, q string, args ...any) ([]*store.Revision, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []*store.Revision
	for rows.Next() {
		rev, err := scanRevision(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, rev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func scanRevision(row pgx.Row) (*store.Revision, error) {
	var r store.Revision
	if err := row.Scan(&r.Seq, &r.Routine, &r.Namespace, &r.Hash, &r.Size, &r.Author, &r.Message, &r.GitCommit, &r.RollbackOf, &r.CreatedAt); err != nil {
		return nil, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return &r, nil
}
