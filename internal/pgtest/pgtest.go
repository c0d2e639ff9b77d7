// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in
// a temporary directory, postgres on 127.0.0.1 and a free port, with a
// password, and one empty database per test. A test starts a server of
// its own (StartServer), or the tests of a package share one (Shared,
// with Main in their TestMain). It needs PostgreSQL installed
// (Debian's postgresql package) and Linux. Without them a test skips,
// saying how to run it, on a developer's machine, and fails under CI
// (the variable CI=true, which .ci/run and GitHub Actions set): CI
// installs PostgreSQL, so a missing server must not pass unnoticed there.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server of a test.
type Server struct {
	port     int
	password string
	dbs      atomic.Int64

	mu sync.Mutex // guards runner
	runner
}

// StartServer initializes and starts a server for t and the subtests it
// runs (parallel or not), and stops it and removes its files in
// t.Cleanup. A test whose subtests each take a database with Database
// pays for one server: initdb and the start cost about a second, a
// database some milliseconds.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := startServer(t.Cleanup, nil, nil)
	if err != nil {
		failStart(t, err)
	}
	return s
}

// KeyPair is a certificate and its private key, PEM-encoded.
type KeyPair struct{ Cert, Key []byte }

// StartServerTLS is StartServer with TLS on (ssl=on), serving pair: for
// tests of what clients make of sslmode. Its Database URLs still say
// sslmode=disable; a test sets the mode it tries.
func StartServerTLS(t testing.TB, pair KeyPair) *Server {
	t.Helper()
	s, err := startServer(t.Cleanup, nil, &pair)
	if err != nil {
		failStart(t, err)
	}
	return s
}

// shared is the server of Shared, stopped by Main.
var shared struct {
	mu       sync.Mutex
	main     bool // Main is running the tests
	started  bool
	s        *Server
	err      error
	cleanups []func()
}

// Shared returns the server of the whole test binary, started at the
// first call: the tests and benchmarks of a package share it, each with
// databases of its own (Database), and pay for one server in all. The
// package's TestMain must run the tests with Main, which stops the server
// after the last one; without it, Shared fails the test.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("pgtest: Shared needs the package's TestMain to run the tests with pgtest.Main, which stops the server: add func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	if !shared.started {
		shared.started = true
		shared.s, shared.err = startServer(func(f func()) { shared.cleanups = append(shared.cleanups, f) }, nil, nil)
	}
	if shared.err != nil {
		failStart(t, shared.err)
	}
	return shared.s
}

// Main runs the tests of m and then stops the server of Shared, if one
// was started, and returns the exit code for os.Exit.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for i := len(shared.cleanups) - 1; i >= 0; i-- { // in reverse, as t.Cleanup
		shared.cleanups[i]()
	}
	shared.cleanups = nil
	return code
}

// unavailableError is why there is no server on this machine: no
// PostgreSQL, or no system to run it on.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }

// failStart ends t, which has no server because of err.
func failStart(t testing.TB, err error) {
	t.Helper()
	var u *unavailableError
	if errors.As(err, &u) {
		unavailable(t, u.err)
	}
	t.Fatalf("pgtest: %v", err)
}

// Install is what to run when PostgreSQL is missing.
const Install = "apt-get install -y postgresql"

// Start starts a server outside a test (the benchmark program), with
// extra settings (name=value, as postgres -c takes them, overriding
// pgtest's), and returns it with the function that stops it and removes
// its files. Where PostgreSQL is missing, the error says how to install it.
func Start(settings ...string) (s *Server, stop func(), err error) {
	var cleanups []func()
	stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- { // in reverse, as t.Cleanup
			cleanups[i]()
		}
	}
	s, err = startServer(func(f func()) { cleanups = append(cleanups, f) }, settings, nil)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("pgtest: %w (install it with `%s`)", err, Install)
	}
	return s, stop, nil
}

// Database creates an empty database and returns its URL, with the
// password of the server's user postgres, and sslmode=disable.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	u, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// NewDatabase is Database outside a test.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := "test_" + strconv.FormatInt(s.dbs.Add(1), 10)
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.url(name), nil
}

func (s *Server) url(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// debianBins is where Debian keeps initdb and postgres, off PATH.
const debianBins = "/usr/lib/postgresql/*/bin/initdb"

// errMissing is the error of binDir when PostgreSQL is not installed.
var errMissing = errors.New("PostgreSQL not found (looked for initdb on PATH and in " + filepath.Dir(debianBins) + ")")

// binDir finds the directory of initdb and postgres, with lookPath and
// glob (exec.LookPath and filepath.Glob but in tests): that of initdb on
// PATH, else the newest /usr/lib/postgresql/*/bin.
func binDir(lookPath func(string) (string, error), glob func(string) ([]string, error)) (string, error) {
	if p, err := lookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	found, _ := glob(debianBins)
	if len(found) == 0 {
		return "", errMissing
	}
	slices.SortFunc(found, func(a, b string) int {
		return version(a) - version(b)
	})
	return filepath.Dir(found[len(found)-1]), nil
}

// version is the major version in /usr/lib/postgresql/<version>/bin/initdb.
func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// findBinDir is binDir on this machine.
func findBinDir() (string, error) { return binDir(exec.LookPath, filepath.Glob) }

// unavailable ends t, which cannot have its server for the reason err:
// see verdict.
func unavailable(t testing.TB, err error) {
	t.Helper()
	fail, msg := verdict(os.Getenv("CI"), err)
	if fail {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// verdict decides what a test without its server does, given the
// variable CI: it fails under CI (CI=true, or another true value of
// strconv.ParseBool), where PostgreSQL is installed and a test that did
// not run must not pass unnoticed; elsewhere it skips. msg says why and
// how to run the test.
func verdict(ci string, err error) (fail bool, msg string) {
	how := fmt.Sprintf("pgtest: %v: install it with `%s` to run this test", err, Install)
	if isCI, _ := strconv.ParseBool(ci); isCI {
		return true, how + " (CI=true: a test that needs PostgreSQL fails without it instead of skipping)"
	}
	return false, how + " (skipped; under CI=true it fails)"
}
