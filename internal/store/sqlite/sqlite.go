// Package sqlite is the embedded store driver: it keeps runs, step records,
// logs and the state of routines in one SQLite file (.routines/state.db by
// default) through the pure-Go modernc.org/sqlite, in WAL mode. It owns its
// SQL, its embedded numbered migrations and the translation of SQLite errors
// into the sentinel errors of package routine.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/routines-dev/routines/internal/store"
)

// Settings of the writer and reader connections. busy_timeout makes a connection wait for a
// lock held by another process instead of failing with SQLITE_BUSY, and
// _txlock=immediate takes the write lock at BEGIN, so a transaction never
// has to upgrade a read snapshot that another writer made stale (which
// fails at once, whatever the timeout). auto_vacuum=INCREMENTAL takes
// effect in a new file only (before its first table), or at a VACUUM
// (Store.Compact): the pages pruning frees are then given back to the
// file system by Store.Vacuum.
const (
	baseParams   = "_pragma=busy_timeout(10000)&_pragma=auto_vacuum(INCREMENTAL)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	readerParams = "_pragma=busy_timeout(10000)&_pragma=query_only(1)"
)

// Sync is how a store waits for the disk at each commit (docs/serve.md#durability).
type Sync string

const (
	// SyncFull, the default, fsyncs the write-ahead log at every commit:
	// a write acknowledged to a caller (a run answered 202) survives a
	// power cut or a kernel crash. Group commit makes the writes that
	// arrive together share one fsync.
	SyncFull Sync = "full"
	// SyncNormal drops that fsync (it happens at checkpoints only): a
	// crashed process still loses nothing, but a power cut may lose the
	// last commits, acknowledged or not. The file is never corrupt. An
	// explicit opt-out for throwaway workloads.
	SyncNormal Sync = "normal"
	// syncOff never waits for the disk: a store thrown away after use.
	syncOff Sync = "off"
)

// writerParams are the settings of the writer connection of a store that
// syncs as sync says.
func writerParams(sync Sync) string {
	return baseParams + "&_pragma=synchronous(" + strings.ToUpper(string(sync)) + ")"
}

// Store is a store.Store on one SQLite file.
//
// It holds two pools on the file. SQLite admits one writer at a time, so
// the writer pool has a single connection, and in-process writers queue
// for it in groupCommit, which makes those that wait together share a
// transaction, rather than in SQLite's busy handler (which sleeps and
// polls); every write statement is prepared once on that connection. In WAL mode readers never block the writer nor each
// other, so reads go to a second pool of read-only connections, one per
// CPU and at least four. Another process on the same file is just one more
// writer: busy_timeout and BEGIN IMMEDIATE make it wait its turn.
type Store struct {
	w       *sql.DB
	r       *sql.DB
	gc      *writer // every write goes through it
	scratch bool    // thrown away after use: Close does not checkpoint
	// wake tells Wakeups of this store's writes; another process's writes
	// to the file go unheard, and the scheduler's poll finds them.
	wake store.WakeHub
	// cancels tells CancelWakeups of this store's cancel requests.
	cancels store.WakeHub
	// revocations tells TokenRevocations of this store's revocations.
	revocations store.WakeHub

	// Write statements, prepared on w. Reads are not prepared ahead: a
	// command that only writes (run-once) then never opens a reader.
	runCreate      *sql.Stmt
	runUpdate      *sql.Stmt
	stepSave       *sql.Stmt
	logInsert      *sql.Stmt
	logInsertChunk *sql.Stmt
	statePurge     *sql.Stmt
	stateExists    *sql.Stmt
	stateUpsert    *sql.Stmt
	stateDelete    *sql.Stmt
	claimBusy      *sql.Stmt
	claimPick      *sql.Stmt
	claimTake      *sql.Stmt
	heartbeat      *sql.Stmt
	requeue        *sql.Stmt
	auditInsert    *sql.Stmt
	// The fold of run ends into rollups before each commit (rollups.go),
	// and the widths of the rollups, in seconds.
	runEnds         *sql.Stmt
	runEndsClear    *sql.Stmt
	rollupAdd       *sql.Stmt
	rollupTokensAdd *sql.Stmt
	rollupWidths    []int64

	// Read statements prepared on r at their first use, for the hot reads
	// of the daemon (parsing stateGetSQL cost more than running it).
	rmu       sync.Mutex
	stateGet  *sql.Stmt
	secretGet *sql.Stmt
}

// Open opens the store in the SQLite file at path, creating the file and
// its directory when missing, and brings its schema up to date. Its
// commits are durable (SyncFull).
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenSync(ctx, path, SyncFull)
}

// OpenSync is Open with commits that wait for the disk as sync says.
func OpenSync(ctx context.Context, path string, sync Sync) (*Store, error) {
	s, err := open(ctx, path, writerParams(sync))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// OpenURL opens the store a sqlite: URL names (store.SQLitePath), as Open
// does: the driver of the scheme sqlite in store.Drivers. The query
// parameter sync=normal opts out of durable commits (SyncNormal).
func OpenURL(ctx context.Context, u string) (store.Store, error) {
	path, err := store.SQLitePath(u)
	if err != nil {
		return nil, err
	}
	sync := SyncFull
	if _, query, ok := strings.Cut(u, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("store URL %q: %w", u, err)
		}
		for name, vs := range q {
			if name != "sync" {
				return nil, fmt.Errorf("store URL %q: unknown parameter %q; the one known is sync=full|normal", u, name)
			}
			switch v := Sync(vs[len(vs)-1]); v {
			case SyncFull, SyncNormal:
				sync = v
			default:
				return nil, fmt.Errorf("store URL %q: sync=%s: want sync=full (the default: every commit on disk) or sync=normal", u, v)
			}
		}
	}
	return OpenSync(ctx, path, sync)
}

// OpenScratch opens a store that is thrown away after use (the runs of
// `routines test`): like Open, but it never waits for the disk — a crash
// may lose it whole — and Close does not fold its log into the file.
func OpenScratch(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path, writerParams(syncOff))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.scratch = true
	return s, nil
}

func open(ctx context.Context, path, params string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, err
	}
	// Create the file ourselves so that it, and the -wal and -shm files
	// SQLite gives the same mode, are private to the user: they hold
	// inputs, outputs and logs.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	w, err := sql.Open("sqlite", URI(abs, params))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	// A damaged file shows here at the latest: migrate reads the header
	// (SQLITE_NOTADB) and prepare parses the schema on page 1
	// (SQLITE_CORRUPT). Damage deeper in is found by doctor's
	// integrity check, which reads every page: too slow for every open.
	if err := migrate(ctx, w, abs); err != nil {
		return nil, errors.Join(corrupt(abs, err), w.Close())
	}

	r, err := sql.Open("sqlite", URI(abs, readerParams))
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	s := &Store{w: w, r: r}
	s.wake.SetLive(true)
	s.cancels.SetLive(true)
	s.revocations.SetLive(true)
	g, err := newGroupCommit(ctx, w)
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.gc = &writer{groupCommit: g, path: abs}
	if err := s.prepare(ctx); err != nil {
		return nil, errors.Join(corrupt(abs, err), s.Close())
	}
	if s.rollupWidths, err = readRollupWidths(ctx, w); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.gc.beforeCommit = s.foldRunEnds
	return s, nil
}

// URI is the SQLite URI of the file at the absolute path abs with the
// query params, escaped so that any file name works. A Windows path
// (C:\x) gets a slash first: file:///C:/x, as SQLite reads it, where
// file://C:/x would name a host.
func URI(abs, params string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: params}
	return u.String()
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db    *sql.DB
		stmt  **sql.Stmt
		query string
	}{
		{s.w, &s.runCreate, runCreateSQL},
		{s.w, &s.runUpdate, runUpdateSQL},
		{s.w, &s.stepSave, stepSaveSQL},
		{s.w, &s.logInsert, logInsertSQL},
		{s.w, &s.logInsertChunk, logInsertChunkSQL},
		{s.w, &s.statePurge, statePurgeSQL},
		{s.w, &s.stateExists, stateExistsSQL},
		{s.w, &s.stateUpsert, stateUpsertSQL},
		{s.w, &s.stateDelete, stateDeleteSQL},
		{s.w, &s.claimBusy, claimBusySQL},
		{s.w, &s.claimPick, claimPickSQL},
		{s.w, &s.claimTake, claimTakeSQL},
		{s.w, &s.heartbeat, heartbeatSQL},
		{s.w, &s.requeue, requeueSQL},
		{s.w, &s.runEnds, runEndsSQL},
		{s.w, &s.runEndsClear, runEndsClearSQL},
		{s.w, &s.rollupAdd, rollupAddSQL},
		{s.w, &s.rollupTokensAdd, rollupTokensAddSQL},
		{s.w, &s.auditInsert, auditInsertSQL},
	} {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = st
	}
	return nil
}

// Close closes the store. It first folds the write-ahead log back into the
// database file, so a closed store is one self-contained file.
func (s *Store) Close() error {
	s.wake.Close()
	s.cancels.Close()
	s.revocations.Close()
	var errs []error
	for _, st := range []*sql.Stmt{s.runCreate, s.runUpdate, s.stepSave, s.logInsert, s.logInsertChunk,
		s.statePurge, s.stateExists, s.stateUpsert, s.stateDelete,
		s.claimBusy, s.claimPick, s.claimTake, s.heartbeat, s.requeue, s.auditInsert,
		s.runEnds, s.runEndsClear, s.rollupAdd, s.rollupTokensAdd} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	s.rmu.Lock()
	for _, st := range []*sql.Stmt{s.stateGet, s.secretGet} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	s.rmu.Unlock()
	if s.gc != nil {
		errs = append(errs, s.gc.close())
	}
	errs = append(errs, s.r.Close())
	// Best effort: another process may be reading, and SQLite checkpoints
	// again whenever the WAL grows, so neither a wait nor a failure here
	// matters enough to hold up or fail Close.
	// A scratch store has nothing to keep.
	ctx := context.Background()
	if !s.scratch {
		if _, err := s.w.ExecContext(ctx, "PRAGMA busy_timeout = 1000"); err == nil {
			_, _ = s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		}
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// constraint returns the extended result code of a constraint violation,
// or 0 when err is not one.
func constraint(err error) int {
	var e *sqlitedrv.Error
	if errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return e.Code()
	}
	return 0
}

// Wakeups returns a channel woken by this store's writes that may have
// made a run claimable.
func (s *Store) Wakeups(ctx context.Context) <-chan struct{} { return s.wake.Subscribe(ctx) }

// CancelWakeups returns a channel woken by this store's requests to
// cancel a running run; another process's go unheard, and the holder's
// heartbeat finds them.
func (s *Store) CancelWakeups(ctx context.Context) <-chan struct{} { return s.cancels.Subscribe(ctx) }

var (
	_ store.Store = (*Store)(nil)
	_ store.Waker = (*Store)(nil)
)

// Ping checks that the store answers (store.Pinger).
func (s *Store) Ping(ctx context.Context) error { return s.r.PingContext(ctx) }
