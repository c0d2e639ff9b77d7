package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startServer initializes and starts a server with the extra settings
// (name=value, as postgres -c takes them), and TLS with pair when not
// nil, and hands cleanup the functions that stop it and remove its
// files. A missing PostgreSQL is an *unavailableError.
func startServer(cleanup func(func()), settings []string, pair *KeyPair) (*Server, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, &unavailableError{err}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, &unavailableError{fmt.Errorf("tests run as root, and PostgreSQL runs only as another user: no user postgres (%v)", err)}
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	cleanup(func() { os.RemoveAll(dir) })
	secret := make([]byte, 12)
	rand.Read(secret)
	s := &Server{password: hex.EncodeToString(secret)}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	owned := []string{dir, pwfile}
	if pair != nil {
		// postgres reads them as its user, and refuses a key others may read.
		crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		if err := os.WriteFile(crt, pair.Cert, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(key, pair.Key, 0o600); err != nil {
			return nil, err
		}
		owned = append(owned, crt, key)
		settings = append([]string{"ssl=on", "ssl_cert_file=" + crt, "ssl_key_file=" + key}, settings...)
	}
	if cred != nil {
		for _, p := range owned {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--no-sync", "--no-instructions",
		"-U", "postgres", "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C")
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	s.runner = runner{postgres: filepath.Join(bin, "postgres"), dir: dir, cred: cred, settings: settings}
	cleanup(s.stop)
	// A port picked free may be taken before postgres binds it: try again.
	for try := 1; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		err = s.start()
		if err == nil {
			return s, nil
		}
		if try == 3 {
			return nil, err
		}
	}
}

// runner is how a Server starts postgres, and the one running.
type runner struct {
	postgres string // the binary
	dir      string // the data directory's parent, and the socket's directory
	cred     *syscall.Credential
	settings []string // -c name=value, after the defaults, which they override
	proc     *process // nil while stopped
}

// process is a running postgres.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer
}

// halt signals the server with sig and waits until it exited, killing it
// should it take more than 30 s.
func (p *process) halt(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Stop shuts the server down as `pg_ctl stop -m fast` does (SIGINT: the
// sessions are ended, their transactions rolled back) and waits until it
// exited, for tests of what clients do while their database is down.
// Start starts it again.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatal("pgtest: Stop of a server that is not running")
	}
	s.proc.halt(syscall.SIGINT)
	s.proc = nil
}

// Start starts a server that Stop stopped, with its data, on its port,
// and returns once it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		t.Fatal("pgtest: Start of a server that is running")
	}
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: start again: %v", err)
	}
}

// stop stops the server for good (SIGQUIT: an immediate shutdown), if it
// runs.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.halt(syscall.SIGQUIT)
		s.proc = nil
	}
}

// start runs postgres on s.port and waits until it accepts connections;
// s.mu is held, or s is not shared yet.
func (s *Server) start() error {
	logs := &syncBuffer{}
	args := []string{"-D", filepath.Join(s.dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(s.port),
		"-c", "unix_socket_directories=" + s.dir,
		// A throwaway server need not survive a crash.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// The tests of a package share the server, each store with a
		// pool of its own: the default of 100 connections is short.
		"-c", "max_connections=400"}
	for _, kv := range s.settings { // after the defaults, which they override
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(s.postgres, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logs, logs
	// SIGQUIT (immediate shutdown) stops the server should the test binary
	// die without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
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
	s.proc = &process{cmd: cmd, exited: exited, logs: logs}
	admin := s.url("postgres")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			s.proc = nil
			return fmt.Errorf("postgres exited on port %d:\n%s", s.port, logs.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, admin)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			s.proc.halt(syscall.SIGQUIT)
			s.proc = nil
			return fmt.Errorf("postgres did not accept connections in 30s: %v\n%s", err, logs.String())
		}
	}
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
