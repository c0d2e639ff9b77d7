package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/routines-dev/routines/internal/artifacts"
)

// MaxArtifactBytes bounds one artifact in the database: a row is read
// and written whole, and large ones belong in a bucket.
const MaxArtifactBytes = 8 << 20

const (
	artifactPutSQL = `INSERT INTO artifacts (run_id, step, name, size, sha256, data) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (run_id, step, name) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, data = EXCLUDED.data, created_at = now()`
	artifactGetSQL    = `SELECT size, sha256, data FROM artifacts WHERE run_id = $1 AND step = $2 AND name = $3`
	artifactListSQL   = `SELECT step, name, size, sha256 FROM artifacts WHERE run_id = $1`
	artifactDeleteSQL = `DELETE FROM artifacts WHERE run_id = $1`
)

// Artifacts is the artifact store in the deployment's database (--artifacts
// postgres): every worker reaches it without another service, for
// artifacts of at most MaxArtifactBytes each.
type Artifacts struct {
	pool *pgxpool.Pool
}

// Artifacts returns the artifact store in the store's database; it
// implements artifacts.Provider.
func (s *Store) Artifacts() artifacts.Store { return &Artifacts{pool: s.pool} }

// Put implements artifacts.Store.
func (a *Artifacts) Put(ctx context.Context, run, step, name string, r io.ReadSeeker, size int64) (artifacts.Info, error) {
	info := artifacts.Info{Step: step, Name: name, Size: size}
	if err := artifacts.CheckKey(run, step, name); err != nil {
		return info, err
	}
	if size > MaxArtifactBytes {
		return info, fmt.Errorf("put artifact %s/%s: %w: %d bytes, over the %d MiB of the postgres artifact store: use a bucket (--artifacts s3://bucket/prefix)",
			step, name, artifacts.ErrTooLarge, size, MaxArtifactBytes>>20)
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	var err error
	if info.Sum, err = artifacts.Copy(&buf, r, size); err != nil {
		return info, fmt.Errorf("put artifact %s/%s: %w", step, name, err)
	}
	data := buf.Bytes()
	if data == nil {
		data = []byte{} // an empty file, not NULL
	}
	if _, err := a.pool.Exec(ctx, artifactPutSQL, run, step, name, size, info.Sum, data); err != nil {
		return info, fmt.Errorf("put artifact %s/%s: %w", step, name, err)
	}
	return info, nil
}

// Get implements artifacts.Store.
func (a *Artifacts) Get(ctx context.Context, run, step, name string) (io.ReadCloser, error) {
	if err := artifacts.CheckKey(run, step, name); err != nil {
		return nil, err
	}
	var (
		size int64
		sum  string
		data []byte
	)
	err := a.pool.QueryRow(ctx, artifactGetSQL, run, step, name).Scan(&size, &sum, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = artifacts.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get artifact %s/%s: %w", step, name, err)
	}
	return artifacts.Verify(io.NopCloser(bytes.NewReader(data)), step, name, size, sum), nil
}

// List implements artifacts.Store.
func (a *Artifacts) List(ctx context.Context, run string) ([]artifacts.Info, error) {
	if err := artifacts.CheckRun(run); err != nil {
		return nil, err
	}
	rows, err := a.pool.Query(ctx, artifactListSQL, run)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %s: %w", run, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (artifacts.Info, error) {
		var i artifacts.Info
		err := row.Scan(&i.Step, &i.Name, &i.Size, &i.Sum)
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %s: %w", run, err)
	}
	// In byte order whatever the database's collation.
	artifacts.Sort(out)
	return out, nil
}

// Delete implements artifacts.Store.
func (a *Artifacts) Delete(ctx context.Context, run string) error {
	if err := artifacts.CheckRun(run); err != nil {
		return err
	}
	if _, err := a.pool.Exec(ctx, artifactDeleteSQL, run); err != nil {
		return fmt.Errorf("delete artifacts of run %s: %w", run, err)
	}
	return nil
}

var (
	_ artifacts.Store    = (*Artifacts)(nil)
	_ artifacts.Provider = (*Store)(nil)
)
