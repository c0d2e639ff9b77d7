// Package postgres is the store driver of remote mode: it keeps runs, step
// records, logs, the state of routines and secrets in a PostgreSQL
// database that servers and workers on many machines share, through pgx
// and a pool of connections. It owns its SQL, its embedded numbered
// migrations, the queue's claims (FOR UPDATE SKIP LOCKED, with an advisory
// lock per routine for ceilings), wake-ups by LISTEN/NOTIFY, and the
// translation of PostgreSQL's errors into the sentinel errors of package
// routine.
package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Options tune a Store. The zero value suits machines whose clocks agree.
type Options struct {
	// DatabaseClock makes the database's clock, rather than the callers',
	// judge and set the queue's times: RunClaim, RunHeartbeat and
	// RunExpire ignore p.Now and use now(), so workers whose clocks are
	// skewed agree on which leases expired and which delayed runs are
	// due. The instants callers choose on their own clocks are kept as
	// delays: a run created running is leased until now() + Lease, a
	// delayed run (RunCreate's NotBefore) waits NotBefore - QueuedAt, and
	// RunRequeue's NotBefore waits NotBefore - Now (given as it is when
	// RunRequeueParams.Now is zero). QueuedAt, the other recorded times and
	// dedupe windows stay the callers'. Every server and worker on a
	// database must agree on this setting.
	DatabaseClock bool
	// Logger tells of lost and regained connections of wake-ups; nil
	// discards.
	Logger *slog.Logger
}

// Store is a store.Store in a PostgreSQL database.
//
// Statements go through a pool of connections (pgxpool: its size is the
// URL's pool_max_conns, by default defaultConns), each prepared once per
// connection by pgx's statement cache. A
// write of several statements is sent as one pipeline, which PostgreSQL
// runs as one implicit transaction: one round trip, all or nothing. Wake-
// ups take one more connection of their own, from the first call of
// Wakeups to Close.
type Store struct {
	pool        *pgxpool.Pool
	checkpoints *groupCheckpoint
	opts        Options
	log         *slog.Logger
	wake        store.WakeHub
	cancels     store.WakeHub // of CancelWakeups, on cancelChannel
	revocations store.WakeHub // of TokenRevocations, on tokenChannel

	mu           sync.Mutex
	closed       bool
	stopListen   context.CancelFunc // nil until Wakeups starts the listener
	listenerDone chan struct{}
}

// errBadURL says what a store URL looks like. The parser's own message
// quotes the URL, and so its password: it is left out.
var errBadURL = errors.New("the store URL is not a valid PostgreSQL URL: write postgres://user:password@host:5432/database?sslmode=verify-full")

// Open connects to the database at url (postgres://user:password@host:
// port/database?sslmode=…, or the key=value form libpq reads, with every
// setting pgx knows, sslmode and pool_max_conns among them) and brings its
// schema up to date.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	return open(ctx, url, opts)
}

// OpenURL opens the store of a deployment: Open with the database's clock
// judging leases and delays, which every server and worker of the
// deployment then shares, whatever their own clocks say. It is the driver
// of the schemes postgres and postgresql in store.Drivers.
func OpenURL(ctx context.Context, url string) (store.Store, error) {
	return open(ctx, url, Options{DatabaseClock: true})
}

// defaultConns is the size of a store's pool of connections when the URL
// does not say (pool_max_conns). Each server and worker is one of many
// clients of one database, and a database does most with few statements
// under way per core: with four workers of four connections each, 16
// statements at once on 2 cores cost PostgreSQL 576 µs of CPU per no-op
// run, against 444 µs with two connections each (docs/performance.md).
// Two, so that one slow statement (a large bundle fetched) holds up no
// other; a worker's checkpoints share one (groupCheckpoint).
const defaultConns = 2

func open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", errBadURL)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "routines"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		var cert *tls.CertificateVerificationError
		if errors.As(err, &cert) {
			return nil, fmt.Errorf("open store: %w (the database's certificate is checked against sslrootcert=/path/to/ca.pem in the URL, else the system's CAs: set sslrootcert to the CA that signed it)", err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{pool: pool, checkpoints: newGroupCheckpoint(pool), opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Close stops the wake-ups, closing their channels, and closes the pool
// once the statements under way end. Closing again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	stop, done := s.stopListen, s.listenerDone
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	s.wake.Close()
	s.cancels.Close()
	s.revocations.Close()
	s.pool.Close()
	return nil
}

// now is the $now of a statement that judges the queue: the caller's
// clock, or NULL with DatabaseClock, which the SQL reads as now().
func (s *Store) now(t time.Time) *time.Time {
	if s.opts.DatabaseClock {
		return nil
	}
	return &t
}

// later is an instant t that a caller chose when its clock read now, as
// the pair the SQL reads as COALESCE(abs, now() + delay): the instant
// itself or, with DatabaseClock and a known now, the delay t - now, which
// no skew of the caller's clock shifts. A nil t is none: both nil.
func (s *Store) later(t *time.Time, now time.Time) (abs *time.Time, delay *time.Duration) {
	switch {
	case t == nil:
		return nil, nil
	case s.opts.DatabaseClock && !now.IsZero():
		d := t.Sub(now)
		return nil, &d
	}
	return t, nil
}

// Errors that the functions of the schema raise (0001_init.sql), and
// those of PostgreSQL the store translates.
const (
	codeNoRun        = "RT404" // routines_hold: no such run
	codeNotHeld      = "RT409" // routines_hold: another worker holds the run
	codeForeignKey   = "23503"
	codeUniqueViolat = "23505"
)

// translate wraps a PostgreSQL error that the store's contract names in
// routine.ErrNotFound or routine.ErrConflict, saying what was wrong; other
// errors come back as they are.
func translate(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case codeNoRun:
		return fmt.Errorf("%s: %w", pe.Message, routine.ErrNotFound)
	case codeNotHeld:
		return fmt.Errorf("%s: %w", pe.Message, routine.ErrConflict)
	case codeForeignKey:
		// Every foreign key of the schema names a run.
		return fmt.Errorf("no run %s: %w", strings.Join(keyValues(pe), ", "), routine.ErrNotFound)
	case codeUniqueViolat:
		switch v := keyValues(pe); {
		case pe.ConstraintName == "runs_pkey":
			return fmt.Errorf("id taken: %w", routine.ErrConflict)
		case pe.ConstraintName == "logs_pkey" && len(v) == 2:
			return fmt.Errorf("run %s seq %s: seq taken: %w", v[0], v[1], routine.ErrConflict)
		}
		return fmt.Errorf("%s: %w", pe.Message, routine.ErrConflict)
	}
	return err
}

// keyValues returns the values of the key a constraint error is about:
// ["01J…", "3"] of the detail "Key (run_id, seq)=(01J…, 3) already
// exists.", or the constraint's name when the detail is not of that form.
func keyValues(pe *pgconn.PgError) []string {
	_, vals, ok := strings.Cut(pe.Detail, ")=(")
	end := strings.LastIndex(vals, ")")
	if !ok || end < 0 {
		return []string{pe.ConstraintName}
	}
	return strings.Split(vals[:end], ", ")
}

// rows is what scanRun reads from: a pgx.Row or pgx.Rows.
type rows interface{ Scan(dest ...any) error }

var (
	_ store.Store = (*Store)(nil)
	_ store.Waker = (*Store)(nil)
)

// Ping checks that the database answers (store.Pinger).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }
