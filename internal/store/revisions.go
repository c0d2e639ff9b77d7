package store

import (
	"context"
	"time"
)

// Revisions keeps the routines pushed to a deployment (remote mode): each
// push is an immutable bundle of the routine's directory, keyed by the
// sha256 of its bytes, and a deployment record that makes a bundle the
// routine's current revision. History is append-only: a rollback is a new
// record naming an earlier bundle.
type Revisions interface {
	// RevisionPut stores p.Bundle under p.Hash (once: a bundle already
	// stored is not stored again) and makes it the current revision of
	// p.Routine with a new deployment record, unless it is the current
	// one already: then nothing changes and created is false. The
	// returned record is the routine's current one either way. A routine
	// belongs to the namespace of its first push: a push or rollback of it
	// from another namespace changes nothing and wraps ErrConflict.
	RevisionPut(ctx context.Context, p *RevisionPutParams) (rev *Revision, created bool, err error)
	// RevisionBundle returns the bytes of the bundle with this hash; a
	// missing one wraps ErrNotFound.
	RevisionBundle(ctx context.Context, hash string) ([]byte, error)
	// RevisionList returns the deployment records of a routine, newest
	// first; a routine never pushed has none.
	RevisionList(ctx context.Context, p *RevisionListParams) ([]*Revision, error)
	// RevisionCurrent returns the current revision of every routine that
	// has one, by routine name.
	RevisionCurrent(ctx context.Context) ([]*Revision, error)
}

// Revision is one deployment record: which bundle became the routine's
// current revision, when, by whom and why.
type Revision struct {
	Seq       int64 // orders the records of all routines
	Routine   string
	Namespace string // the routine's, and so its runs' and events'
	Hash      string // sha256 hex of the bundle: the revision's id
	Size      int64  // bytes of the bundle
	Author    string
	Message   string
	GitCommit string // of the pushed directory, when it was a checkout
	// RollbackOf is the hash of the revision this record replaced when
	// it was a rollback; "" for a push.
	RollbackOf string
	CreatedAt  time.Time
}

// RevisionPutParams are one push, or one rollback (Bundle nil: Hash
// must name a bundle already stored, else the error wraps ErrNotFound).
type RevisionPutParams struct {
	Routine    string
	Namespace  string // DefaultNamespace when ""
	Hash       string
	Bundle     []byte
	Author     string
	Message    string
	GitCommit  string
	RollbackOf string
	Now        time.Time
}

// RevisionListParams select the records RevisionList returns.
type RevisionListParams struct {
	Routine string
	Limit   int // 0: all
}
