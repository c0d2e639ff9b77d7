package store

import (
	"context"
	"time"
)

// Pruner is implemented by a store that deletes what a retention policy
// lets go (package retention): the SQLite driver, whose one file a local
// daemon keeps for months. Each Prune is one short write transaction of
// at most Limit rows, so that pruning never holds the writer for long; a
// caller repeats it while Pruned.More.
//
// A run is pruned only once it is final: succeeded, failed or cancelled,
// or dead and replayed (a run records it in ReplayOf), or dead at all with
// PruneDeadLetters. A run that later runs still fold into (its
// DedupeUntil is after Now) is kept until its window closes. Deleting a
// run deletes its step records, log lines and tags; the rollups that
// Stats reads keep counting it.
type Pruner interface {
	// Prune deletes up to p.Limit rows of p.Kind.
	Prune(ctx context.Context, p *PruneParams) (*Pruned, error)
	// PruneCount counts what Prune would delete of p.Kind, all batches
	// together (p.Limit is ignored): a dry run.
	PruneCount(ctx context.Context, p *PruneParams) (int64, error)
	// Vacuum gives back to the file system up to pages of the pages that
	// pruning freed, in one short write transaction, when the store frees
	// pages incrementally, and reports how the store stands after.
	Vacuum(ctx context.Context, pages int) (*VacuumStatus, error)
	// Compact rewrites the whole store (a full VACUUM), which also turns
	// on incremental vacuum in a store made before it was the default.
	// It holds the writer for as long as the copy takes.
	Compact(ctx context.Context) error
}

// PruneKind is what a Prune deletes.
type PruneKind string

// The kinds of rows retention deletes.
const (
	// PruneRuns deletes the runs that ended before Before.
	PruneRuns PruneKind = "runs"
	// PruneRunsOverCount deletes, of each routine, the runs older than
	// its Keep newest ones (runs of every state count toward Keep).
	PruneRunsOverCount PruneKind = "runs_over_count"
	// PruneDeadLetters deletes every dead run, replayed or not, whatever
	// its age: the explicit pruning of the dead-letter queue.
	PruneDeadLetters PruneKind = "dead_letters"
	// PruneLogs deletes the log lines of the runs that ended before
	// Before (and, with Since, at or after Since), and keeps the runs.
	PruneLogs PruneKind = "logs"
	// PruneAudit deletes the audit records older than Before.
	PruneAudit PruneKind = "audit"
	// PruneRollupMinutes and PruneRollupHours delete the rollup rows of
	// that width (RollupMinute, RollupHour) that start before Before.
	PruneRollupMinutes PruneKind = "rollup_minutes"
	PruneRollupHours   PruneKind = "rollup_hours"
)

// PruneParams select what one Prune deletes.
type PruneParams struct {
	Kind   PruneKind
	Before time.Time
	// Since bounds PruneLogs from below, in PruneCount only: the lines
	// of runs that ended before it go with their runs (PruneRuns), and a
	// dry run counts them there.
	Since time.Time
	// Keep is how many runs of each routine PruneRunsOverCount keeps.
	Keep int
	// Now is the caller's clock, which judges dedupe windows.
	Now time.Time
	// Limit bounds the rows one Prune deletes (and, for PruneLogs, the
	// runs whose lines it looks for); 500 when 0.
	Limit int
}

// DefaultPruneLimit is the rows a Prune deletes at most when
// PruneParams.Limit is 0.
const DefaultPruneLimit = 500

// Pruned is what one Prune did.
type Pruned struct {
	// Rows deleted of the kind: runs (their steps, lines and tags not
	// counted), log lines, audit records, rollup rows.
	Rows int64
	// RunIDs are the runs deleted, whose files (artifacts) the caller
	// deletes too.
	RunIDs []string
	// More is set when the batch was full: there may be more to delete.
	More bool
}

// VacuumStatus is how a store's file stands.
type VacuumStatus struct {
	// Incremental is whether freed pages are given back to the file
	// system (Vacuum); when not, they are reused but the file never
	// shrinks until Compact.
	Incremental bool
	// FreePages are pages of the file that hold nothing; PageSize their
	// size in bytes.
	FreePages, PageSize int64
}
