package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/store"
)

const (
	stateGetSQL = `SELECT value FROM state
		WHERE routine = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)`
	// statePutSQL purges the routine's expired keys and sets the key in
	// one statement (0001_init.sql).
	statePutSQL = `SELECT routines_state_put($1, $2, $3, $4, $5)`
	// stateDeleteSQL purges the routine's expired keys and deletes the
	// key if unexpired, in one statement: the two sets of rows are
	// disjoint, as a statement needs them to be.
	stateDeleteSQL = `WITH purged AS (
			DELETE FROM state WHERE routine = $1 AND expires_at <= $3
		), deleted AS (
			DELETE FROM state WHERE routine = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3) RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM deleted)`
)

// StateGet returns the value of an unexpired key of a routine's state.
func (s *Store) StateGet(ctx context.Context, p *store.StateGetParams) (string, bool, error) {
	var value []byte
	switch err := s.pool.QueryRow(ctx, stateGetSQL, p.Routine, p.Key, p.Now).Scan(&value); {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("get state %s/%s: %w", p.Routine, p.Key, err)
	}
	return string(value), true, nil
}

// StatePut sets a key of a routine's state, in one statement with the
// purge of the routine's expired keys.
func (s *Store) StatePut(ctx context.Context, p *store.StatePutParams) (bool, error) {
	var existed bool
	if err := s.pool.QueryRow(ctx, statePutSQL, p.Routine, p.Key, []byte(p.Value), p.ExpiresAt, p.Now).Scan(&existed); err != nil {
		return false, fmt.Errorf("put state %s/%s: %w", p.Routine, p.Key, err)
	}
	return existed, nil
}

// StateDelete removes a key of a routine's state, in one statement with
// the purge of the routine's expired keys.
func (s *Store) StateDelete(ctx context.Context, p *store.StateDeleteParams) (bool, error) {
	var existed bool
	if err := s.pool.QueryRow(ctx, stateDeleteSQL, p.Routine, p.Key, p.Now).Scan(&existed); err != nil {
		return false, fmt.Errorf("delete state %s/%s: %w", p.Routine, p.Key, err)
	}
	return existed, nil
}
