// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in
// a temporary directory, postgres on 127.0.0.1 and a free port, with a
// password, and one empty database per test. It needs PostgreSQL installed
// (Debian's postgresql package) and fails the test, saying so, when it is
// not: CI installs it, so a missing server must not pass unnoticed.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server of a test.
type Server struct {
	port     int
	password string
	dbs      atomic.Int64
}

// Install is what to run when PostgreSQL is missing.
const Install = "apt-get install -y postgresql"

// StartServer initializes and starts a server for t and the subtests it
// runs (parallel or not), and stops it and removes its files in
// t.Cleanup. A package starts one from its single PostgreSQL test, whose
// subtests each take a database with Database: initdb and the start cost
// about a second, a database some milliseconds.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: tests run as root, and PostgreSQL runs only as another user: no user postgres (%v); %s creates it", err, Install)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	secret := make([]byte, 12)
	rand.Read(secret)
	s := &Server{password: hex.EncodeToString(secret)}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--no-sync", "--no-instructions",
		"-U", "postgres", "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C")
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// A port picked free may be taken before postgres binds it: try again.
	for try := 1; ; try++ {
		err := s.start(t, filepath.Join(bin, "postgres"), dir, cred)
		if err == nil {
			return s
		}
		if try == 3 {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// start runs postgres on a free port and waits until it accepts
// connections.
func (s *Server) start(t testing.TB, postgres, dir string, cred *syscall.Credential) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	var logs syncBuffer
	cmd := exec.Command(postgres, "-D", filepath.Join(dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+dir,
		// A throwaway server need not survive a crash.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// SIGQUIT (immediate shutdown) stops the server should the test binary
	// die without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	started, exited := make(chan error, 1), make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that started the child ends; this
		// goroutine keeps that thread, locked, until the server exits.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	admin := s.url("postgres")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("postgres exited on port %d:\n%s", s.port, logs.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, admin)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			t.Cleanup(stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("postgres did not accept connections in 30s: %v\n%s", err, logs.String())
		}
	}
}

// Database creates an empty database and returns its URL, with the
// password of the server's user postgres, and sslmode=disable.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	name := "test_" + strconv.FormatInt(s.dbs.Add(1), 10)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.url(name)
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

// binDir finds the directory of initdb and postgres: that of initdb on
// PATH, else the newest /usr/lib/postgresql/*/bin (Debian keeps them
// there, off PATH).
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errors.New("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): " + Install)
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

// syncBuffer collects the server's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
