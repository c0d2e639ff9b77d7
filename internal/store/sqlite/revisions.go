package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// revisionColumns are the columns scanRevision reads, the bundle's size
// computed from its data.
const revisionColumns = `d.seq, d.routine, d.namespace, d.hash, length(b.data), d.author, d.message, d.git_commit, d.rollback_of, d.created_at`

const (
	bundleInsertSQL = `INSERT INTO bundles (hash, data, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING`
	bundleGetSQL    = `SELECT data FROM bundles WHERE hash = ?`
	bundleExistsSQL = `SELECT 1 FROM bundles WHERE hash = ?`
	deployInsertSQL = `INSERT INTO deployments (routine, hash, author, message, git_commit, rollback_of, created_at, namespace)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	revisionLatestSQL = `SELECT ` + revisionColumns + ` FROM deployments d JOIN bundles b ON b.hash = d.hash
		WHERE d.routine = ? ORDER BY d.seq DESC LIMIT 1`
	revisionListSQL = `SELECT ` + revisionColumns + ` FROM deployments d JOIN bundles b ON b.hash = d.hash
		WHERE d.routine = ? ORDER BY d.seq DESC LIMIT ?`
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
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		cur, err := scanRevision(tx.QueryRowContext(ctx, revisionLatestSQL, p.Routine))
		switch {
		case err == nil && cur.Namespace != ns:
			return fmt.Errorf("routine %s belongs to another namespace: %w", p.Routine, routine.ErrConflict)
		case err == nil && cur.Hash == p.Hash:
			rev, created = cur, false
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if p.Bundle != nil {
			if _, err := tx.ExecContext(ctx, bundleInsertSQL, p.Hash, p.Bundle, p.Now.UnixMicro()); err != nil {
				return err
			}
		} else if err := tx.QueryRowContext(ctx, bundleExistsSQL, p.Hash).Scan(new(int)); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("bundle %s: %w", p.Hash, routine.ErrNotFound)
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deployInsertSQL, p.Routine, p.Hash, p.Author, p.Message, p.GitCommit, p.RollbackOf, p.Now.UnixMicro(), ns); err != nil {
			return err
		}
		rev, err = scanRevision(tx.QueryRowContext(ctx, revisionLatestSQL, p.Routine))
		created = true
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
	err := s.r.QueryRowContext(ctx, bundleGetSQL, hash).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("get bundle %s: %w", hash, routine.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get bundle %s: %w", hash, err)
	}
	return data, nil
}

// RevisionList returns a routine's deployment records, newest first.
func (s *Store) RevisionList(ctx context.Context, p *store.RevisionListParams) ([]*store.Revision, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	return s.revisions(ctx, "list revisions", revisionListSQL, p.Routine, limit)
}

// RevisionCurrent returns each routine's current revision.
func (s *Store) RevisionCurrent(ctx context.Context) ([]*store.Revision, error) {
	return s.revisions(ctx, "current revisions", revisionCurrentSQL)
}

func (s *Store) revisions(ctx context.Context, what, q string, args ...any) ([]*store.Revision, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
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

func scanRevision(row interface{ Scan(...any) error }) (*store.Revision, error) {
	var (
		r       store.Revision
		created int64
	)
	if err := row.Scan(&r.Seq, &r.Routine, &r.Namespace, &r.Hash, &r.Size, &r.Author, &r.Message, &r.GitCommit, &r.RollbackOf, &created); err != nil {
		return nil, err
	}
	r.CreatedAt = fromMicros(created)
	return &r, nil
}
