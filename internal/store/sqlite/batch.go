package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// maxBatch bounds how many writes share one transaction, and so how long
// the last of them waits for the commit.
const maxBatch = 128

// groupCommit makes the writes of concurrent callers share transactions.
// SQLite commits one transaction at a time, and a commit costs far more
// than the rows it writes (a lock of the shared memory, a frame of the
// write-ahead log per page touched): under load, writes that wait while a
// commit is under way go into the next transaction together. Each write
// runs in a savepoint of its own, so one that fails is undone alone and
// the others commit. A caller that finds no commit under way writes its
// batch itself: a lone write costs what a transaction of its own does.
type groupCommit struct {
	db *sql.DB
	// beforeCommit, when set, runs in every transaction after its writes
	// and before its commit; when it fails, the transaction is undone and
	// every write of it fails with its error.
	beforeCommit func(ctx context.Context, tx *sql.Tx) error
	// Savepoint statements, prepared on db.
	savepoint, release, rollbackTo *sql.Stmt

	mu      sync.Mutex
	done    *sync.Cond // signalled after each batch
	pending []*writeOp
	busy    bool // a caller is writing a batch
}

// writeOp is one caller's write: fn runs within the batch's transaction.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	err  error
	done bool
}

func newGroupCommit(ctx context.Context, db *sql.DB) (*groupCommit, error) {
	g := &groupCommit{db: db}
	g.done = sync.NewCond(&g.mu)
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&g.savepoint, "SAVEPOINT write"},
		{&g.release, "RELEASE write"},
		{&g.rollbackTo, "ROLLBACK TO write"},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", p.query, err), g.close())
		}
		*p.stmt = st
	}
	return g, nil
}

func (g *groupCommit) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{g.savepoint, g.release, g.rollbackTo} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// write runs fn in a transaction, shared with the writes of other callers
// made at the same time, and returns once that transaction committed (nil)
// or fn's work was undone (the error). fn must use only tx for the store,
// and may be undone after it returned nil if the commit fails.
func (g *groupCommit) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, op)
	for !op.done {
		if g.busy {
			g.done.Wait()
			continue
		}
		n := min(len(g.pending), maxBatch)
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.busy = true
		g.mu.Unlock()
		g.commit(batch)
		g.mu.Lock()
		for _, o := range batch {
			o.done = true
		}
		g.busy = false
		g.done.Broadcast()
	}
	return op.err
}

// commit writes one batch in one transaction and sets each write's error.
func (g *groupCommit) commit(batch []*writeOp) {
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, op := range batch {
			op.err = err
		}
		return
	}
	if len(batch) == 1 { // no savepoint needed: the transaction is the write's own
		op := batch[0]
		if op.err = op.fn(op.ctx, tx); op.err == nil {
			op.err = g.finish(tx)
		} else {
			_ = tx.Rollback()
		}
		return
	}
	var written []*writeOp
	for i, op := range batch {
		if err := g.inSavepoint(tx, op); err != nil {
			// The savepoint machinery failed: the transaction is in an
			// unknown state; undo it all.
			_ = tx.Rollback()
			for _, o := range append(written, batch[i:]...) {
				if o.err == nil {
					o.err = err
				}
			}
			return
		}
		if op.err == nil {
			written = append(written, op)
		}
	}
	if len(written) == 0 {
		_ = tx.Rollback()
		return
	}
	if err := g.finish(tx); err != nil {
		for _, op := range written {
			op.err = err
		}
	}
}

// finish runs beforeCommit in tx and commits it, or undoes it when
// beforeCommit fails.
func (g *groupCommit) finish(tx *sql.Tx) error {
	if g.beforeCommit != nil {
		if err := g.beforeCommit(context.Background(), tx); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// inSavepoint runs one write of a batch in a savepoint, undoing it alone
// when it fails (op.err). The error returned is the savepoint's own.
func (g *groupCommit) inSavepoint(tx *sql.Tx, op *writeOp) error {
	ctx := context.Background()
	if err := op.ctx.Err(); err != nil {
		op.err = err
		return nil
	}
	if _, err := tx.StmtContext(ctx, g.savepoint).ExecContext(ctx); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if op.err = op.fn(op.ctx, tx); op.err != nil {
		if _, err := tx.StmtContext(ctx, g.rollbackTo).ExecContext(ctx); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
	}
	if _, err := tx.StmtContext(ctx, g.release).ExecContext(ctx); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}
