package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/routines-dev/routines/internal/store"
)

const (
	stateGetSQL = `SELECT value FROM state
		WHERE routine = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)`
	// Put and delete purge expired keys first: a row left has not expired.
	stateExistsSQL = `SELECT EXISTS (SELECT 1 FROM state WHERE routine = ? AND key = ?)`
	stateUpsertSQL = `INSERT INTO state (routine, key, value, updated_at, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (routine, key) DO UPDATE SET
			value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	stateDeleteSQL = `DELETE FROM state WHERE routine = ? AND key = ?`
	// statePurgeSQL drops the expired keys of a routine: the lazy half of TTLs.
	statePurgeSQL = `DELETE FROM state WHERE routine = ? AND expires_at <= ?`
)

// StateGet returns the value of an unexpired key of a routine's state.
func (s *Store) StateGet(ctx context.Context, p *store.StateGetParams) (string, bool, error) {
	var value string
	st, err := s.readStmt(ctx, &s.stateGet, stateGetSQL)
	if err != nil {
		return "", false, fmt.Errorf("get state %s/%s: %w", p.Routine, p.Key, err)
	}
	err = st.QueryRowContext(ctx, p.Routine, p.Key, p.Now.UnixMicro()).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("get state %s/%s: %w", p.Routine, p.Key, err)
	}
	return value, true, nil
}

// readStmt returns *stmt, preparing query on the reader pool at its first
// use; a failed prepare is tried again by the next call.
func (s *Store) readStmt(ctx context.Context, stmt **sql.Stmt, query string) (*sql.Stmt, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if *stmt == nil {
		st, err := s.r.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		*stmt = st
	}
	return *stmt, nil
}

// StatePut sets a key of a routine's state, in one transaction with the
// purge of the routine's expired keys.
func (s *Store) StatePut(ctx context.Context, p *store.StatePutParams) (bool, error) {
	existed, err := s.stateWrite(ctx, p.Routine, p.Now.UnixMicro(), func(tx *sql.Tx) (bool, error) {
		var existed bool
		if err := tx.StmtContext(ctx, s.stateExists).QueryRowContext(ctx, p.Routine, p.Key).Scan(&existed); err != nil {
			return false, err
		}
		_, err := tx.StmtContext(ctx, s.stateUpsert).ExecContext(ctx, p.Routine, p.Key, p.Value, p.Now.UnixMicro(), micros(p.ExpiresAt))
		return existed, err
	})
	if err != nil {
		return false, fmt.Errorf("put state %s/%s: %w", p.Routine, p.Key, err)
	}
	return existed, nil
}

// StateDelete removes a key of a routine's state, in one transaction with
// the purge of the routine's expired keys.
func (s *Store) StateDelete(ctx context.Context, p *store.StateDeleteParams) (bool, error) {
	existed, err := s.stateWrite(ctx, p.Routine, p.Now.UnixMicro(), func(tx *sql.Tx) (bool, error) {
		res, err := tx.StmtContext(ctx, s.stateDelete).ExecContext(ctx, p.Routine, p.Key)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	})
	if err != nil {
		return false, fmt.Errorf("delete state %s/%s: %w", p.Routine, p.Key, err)
	}
	return existed, nil
}

// stateWrite runs write in a transaction after purging the expired keys of
// routine as of now (microseconds).
func (s *Store) stateWrite(ctx context.Context, routine string, now int64, write func(tx *sql.Tx) (bool, error)) (bool, error) {
	var existed bool
	err := s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		if _, err := tx.StmtContext(ctx, s.statePurge).ExecContext(ctx, routine, now); err != nil {
			return err
		}
		existed, err = write(tx)
		return err
	})
	return existed, err
}
