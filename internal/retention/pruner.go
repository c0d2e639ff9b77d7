package retention

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Config is what a Pruner works on. Store is required.
type Config struct {
	// Store is the project's store; it must prune (store.Pruner).
	Store  store.Store
	Policy Policy
	// RunsDir holds the runs' folders (.routines/runs/<run id>), where
	// a local daemon keeps their artifacts; "" when there are none.
	RunsDir string
	// Limit is the most log lines, audit records or rollup rows one
	// batch deletes, store.DefaultPruneLimit when 0. A batch of runs
	// deletes a fifth as many: each run goes with its step records, lines
	// and tags and from eight indexes (100 runs take ≈ 2 ms of CPU, 500
	// took ≈ 11 ms; BenchmarkPruneBatch in store/sqlite).
	Limit int
	// Pace, when set, waits after each batch as long as it took, so that
	// pruning takes at most half of the writer of a busy store.
	Pace bool
	// VacuumPages is how many free pages one vacuum batch gives back;
	// 256 when 0.
	VacuumPages int
	Now         func() time.Time // time.Now when nil
	Logger      *slog.Logger
}

// Pruner applies a policy: each Pass deletes what the policy lets go, in
// batches of at most Limit rows, each its own short transaction.
type Pruner struct {
	cfg   Config
	store store.Pruner
}

// ErrUnsupported is the error of New for a store that does not prune.
var ErrUnsupported = errors.New("this store does not prune: retention applies to a local project's SQLite store")

// New returns the pruner of cfg.
func New(cfg Config) (*Pruner, error) {
	sp, ok := cfg.Store.(store.Pruner)
	if !ok {
		return nil, ErrUnsupported
	}
	if cfg.Limit <= 0 {
		cfg.Limit = store.DefaultPruneLimit
	}
	if cfg.VacuumPages <= 0 {
		cfg.VacuumPages = 256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pruner{cfg: cfg, store: sp}, nil
}

// Options choose what a Pass does beyond the policy.
type Options struct {
	// DryRun counts what the pass would delete, and deletes nothing.
	DryRun bool
	// DeadLetters deletes every dead run too, replayed or not.
	DeadLetters bool
}

// Report is what a pass deleted (or, dry, would delete).
type Report struct {
	DryRun bool `json:"dry_run"`
	// Runs are the final runs deleted, DeadLetters the dead ones (with
	// Options.DeadLetters), each with its steps, lines, tags and folder.
	Runs        int64 `json:"runs"`
	DeadLetters int64 `json:"dead_letters"`
	// Logs are the lines of runs kept, Audit the audit records, Rollups
	// the rollup rows past their age.
	Logs    int64 `json:"logs"`
	Audit   int64 `json:"audit"`
	Rollups int64 `json:"rollups"`
	// Artifacts are the runs' folders deleted, ArtifactBytes the bytes
	// they held.
	Artifacts     int64 `json:"artifacts"`
	ArtifactBytes int64 `json:"artifact_bytes"`
	// Batches is how many write transactions the pass took, MaxBatch the
	// longest (waiting for the writer included).
	Batches  int           `json:"batches"`
	MaxBatch time.Duration `json:"max_batch_ns"`
	// Vacuum is how the store's file stood after the pass; FreedBytes what
	// the pass's vacuum gave back to the file system.
	Vacuum     *store.VacuumStatus `json:"-"`
	FreedBytes int64               `json:"freed_bytes"`
	Took       time.Duration       `json:"took_ns"`
}

// Removed reports whether the pass deleted anything.
func (r *Report) Removed() bool {
	return r.Runs+r.DeadLetters+r.Logs+r.Audit+r.Rollups+r.Artifacts > 0
}

// Pass applies the policy once, kind after kind: runs (by age, then by
// count), dead letters when asked, log lines, artifacts, audit records,
// rollups; then the store gives the freed pages back to the file system.
func (p *Pruner) Pass(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	now := p.cfg.Now()
	cut := p.cfg.Policy.At(now)
	rep := &Report{DryRun: o.DryRun}
	type step struct {
		params *store.PruneParams
		into   *int64
	}
	var steps []step
	add := func(into *int64, kind store.PruneKind, before time.Time) {
		if !before.IsZero() {
			steps = append(steps, step{&store.PruneParams{Kind: kind, Before: before}, into})
		}
	}
	add(&rep.Runs, store.PruneRuns, cut.Runs)
	if n := p.cfg.Policy.Runs.MaxCount; n > 0 {
		steps = append(steps, step{&store.PruneParams{Kind: store.PruneRunsOverCount, Keep: int(n)}, &rep.Runs})
	}
	if o.DeadLetters {
		steps = append(steps, step{&store.PruneParams{Kind: store.PruneDeadLetters}, &rep.DeadLetters})
	}
	add(&rep.Logs, store.PruneLogs, cut.Logs)
	add(&rep.Audit, store.PruneAudit, cut.Audit)
	add(&rep.Rollups, store.PruneRollupMinutes, cut.RollupMinutes)
	add(&rep.Rollups, store.PruneRollupHours, cut.RollupHours)
	for _, s := range steps {
		s.params.Now, s.params.Limit = now, p.cfg.Limit
		if isRunKind(s.params.Kind) {
			s.params.Limit = max(1, p.cfg.Limit/runRows)
		}
		if s.params.Kind == store.PruneLogs {
			s.params.Since = cut.Runs // a dry run counts those lines with their runs
		}
		var err error
		if o.DryRun {
			var n int64
			n, err = p.store.PruneCount(ctx, s.params)
			*s.into += n
		} else {
			err = p.drain(ctx, rep, s.params, s.into)
		}
		if err != nil {
			return rep, err
		}
	}
	artifacts := cut.Artifacts
	if o.DryRun && !cut.Runs.IsZero() && cut.Runs.After(artifacts) {
		// The folders of the runs the pass would delete go with them.
		artifacts = cut.Runs
	}
	if err := p.sweepArtifacts(ctx, rep, artifacts, o.DryRun); err != nil {
		return rep, err
	}
	if !o.DryRun {
		if err := p.vacuum(ctx, rep); err != nil {
			return rep, err
		}
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// runRows is how many rows of a batch one run counts for.
const runRows = 5

func isRunKind(k store.PruneKind) bool {
	return k == store.PruneRuns || k == store.PruneRunsOverCount || k == store.PruneDeadLetters
}

// drain repeats a batch while it finds more, adding up what it deleted,
// and deletes the folders of the runs it deleted.
func (p *Pruner) drain(ctx context.Context, rep *Report, params *store.PruneParams, into *int64) error {
	for {
		var res *store.Pruned
		err := p.batch(ctx, rep, func() (err error) {
			res, err = p.store.Prune(ctx, params)
			return err
		})
		if err != nil {
			return err
		}
		*into += res.Rows
		for _, id := range res.RunIDs {
			if err := p.removeRunDir(rep, id); err != nil {
				return err
			}
		}
		if !res.More {
			return nil
		}
	}
}

// batch times one write transaction, and paces the next.
func (p *Pruner) batch(ctx context.Context, rep *Report, fn func() error) error {
	t := time.Now()
	err := fn()
	d := time.Since(t)
	rep.Batches++
	rep.MaxBatch = max(rep.MaxBatch, d)
	if err != nil || !p.cfg.Pace {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// vacuum gives the pages freed back to the file system, a batch of
// VacuumPages at a time, when the store frees them incrementally.
func (p *Pruner) vacuum(ctx context.Context, rep *Report) error {
	var before int64 = -1
	for {
		var st *store.VacuumStatus
		pages := p.cfg.VacuumPages
		if before < 0 {
			pages = 0 // look first
		}
		err := p.batch(ctx, rep, func() (err error) {
			st, err = p.store.Vacuum(ctx, pages)
			return err
		})
		if err != nil {
			return err
		}
		if before >= 0 {
			rep.FreedBytes += (before - st.FreePages) * st.PageSize
		}
		rep.Vacuum = st
		if !st.Incremental || st.FreePages == 0 || st.FreePages == before {
			return nil
		}
		before = st.FreePages
	}
}

// removeRunDir deletes the folder of a run the store deleted, and the
// copy of its routine a sealed revision left (engine.sealedCopySuffix).
func (p *Pruner) removeRunDir(rep *Report, id string) error {
	if p.cfg.RunsDir == "" {
		return nil
	}
	for _, name := range []string{id, id + ".routine"} {
		if err := removeDir(rep, filepath.Join(p.cfg.RunsDir, name), false); err != nil {
			return err
		}
	}
	return nil
}

// removeDir deletes a run's folder (or, dry, only measures it), when
// there is one, and counts it and the bytes its files held in rep.
// Neither walk follows a link a step may have left there.
func removeDir(rep *Report, dir string, dry bool) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if !dry {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the folder of a pruned run: %w", err)
		}
	}
	rep.Artifacts++
	rep.ArtifactBytes += n
	return nil
}

// sweepArtifacts deletes the folders of runs (their artifacts) that
// ended before cutoff, and of runs the store no longer has. A folder's
// name starts with its run's id, a ULID, which says when the run was
// created: a run created after cutoff ended after it, so only the older
// folders cost a look-up.
func (p *Pruner) sweepArtifacts(ctx context.Context, rep *Report, cutoff time.Time, dry bool) error {
	if p.cfg.RunsDir == "" || cutoff.IsZero() {
		return nil
	}
	entries, err := os.ReadDir(p.cfg.RunsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the runs' folders: %w", err)
	}
	for _, e := range entries {
		if len(e.Name()) < ulid.EncodedSize {
			continue
		}
		id := e.Name()[:ulid.EncodedSize]
		u, err := ulid.ParseStrict(id)
		if err != nil || !ulid.Time(u.Time()).Before(cutoff) {
			continue
		}
		run, err := p.cfg.Store.RunGet(ctx, id)
		switch {
		case errors.Is(err, routine.ErrNotFound):
		case err != nil:
			return err
		case run.State == routine.StateDead || !run.State.Final() || run.FinishedAt == nil || !run.FinishedAt.Before(cutoff):
			continue
		}
		if err := removeDir(rep, filepath.Join(p.cfg.RunsDir, e.Name()), dry); err != nil {
			return err
		}
	}
	return nil
}
