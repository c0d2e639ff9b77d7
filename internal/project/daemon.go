package project

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/routines-dev/routines/internal/owner"
)

// One daemon serves a project at a time: it holds an exclusive lock on
// .routines/daemon.lock for its whole life, and records where it listens
// in .routines/serve.json once it is up. The kernel drops the lock when
// the process dies, however it dies, so a record whose lock can be taken
// is the record of a dead daemon: stale.
const (
	lockFileName   = "daemon.lock"
	recordFileName = "serve.json"
)

// Daemon is what a running daemon records about itself in serve.json.
type Daemon struct {
	Addr    string    `json:"addr"`              // host:port of its HTTP listener
	PID     int       `json:"pid"`               // its process id
	Started time.Time `json:"started"`           // when it started
	Serving string    `json:"serving,omitempty"` // the directory whose routines it serves
	// Cert is the certificate file the daemon serves HTTPS with (an
	// absolute path); "" for plain HTTP. Clients on this machine trust
	// the daemon when it presents that certificate.
	Cert string `json:"cert,omitempty"`
}

// URL is the base URL of the daemon's API.
func (d Daemon) URL() string {
	if d.Cert != "" {
		return "https://" + d.Addr
	}
	return "http://" + d.Addr
}

// DaemonState is whether a project's daemon runs.
type DaemonState string

// The states of a project's daemon.
const (
	DaemonNone     DaemonState = "not running" // no record, no lock
	DaemonStarting DaemonState = "starting"    // the lock is held, no record yet
	DaemonUp       DaemonState = "up"          // the lock is held and the record written
	DaemonStale    DaemonState = "stale"       // a record whose daemon died without removing it
)

// ErrNoDaemon is the error of a command that needs the project's daemon
// when none runs (no record, or a stale one).
var ErrNoDaemon = errors.New("no daemon is running")

// RecordPath is the file where the project's daemon records itself.
func (p Project) RecordPath() string { return filepath.Join(p.StateDir(), recordFileName) }

func (p Project) lockPath() string { return filepath.Join(p.StateDir(), lockFileName) }

// Daemon reads the record of the project's daemon and tells whether it
// is up. The record is zero when the state is DaemonNone or
// DaemonStarting.
func (p Project) Daemon() (Daemon, DaemonState, error) {
	var d Daemon
	data, err := os.ReadFile(p.RecordPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return d, DaemonNone, err
	default:
		if err := json.Unmarshal(data, &d); err != nil || d.Addr == "" {
			return Daemon{}, DaemonNone, fmt.Errorf("%s: unreadable daemon record; remove it if no daemon runs", p.RecordPath())
		}
	}
	held, err := p.lockHeld()
	if err != nil {
		return d, DaemonNone, err
	}
	switch {
	case held && data == nil:
		return d, DaemonStarting, nil
	case held:
		return d, DaemonUp, nil
	case data == nil:
		return d, DaemonNone, nil
	default:
		return d, DaemonStale, nil
	}
}

// lockHeld reports whether a daemon holds the project's lock, by trying
// to take it for an instant.
func (p Project) lockHeld() (bool, error) {
	if _, err := os.Stat(p.lockPath()); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	release, held, err := owner.TryLock(p.lockPath())
	if err != nil {
		return false, fmt.Errorf("check the daemon lock: %w", err)
	}
	if !held {
		release()
	}
	return held, nil
}

// Running returns the record of the project's running daemon (its URL,
// its certificate), or an error wrapping ErrNoDaemon that says what it
// found: no record, or the record of a daemon that died.
func (p Project) Running() (Daemon, error) {
	d, state, err := p.Daemon()
	if err != nil {
		return Daemon{}, err
	}
	switch state {
	case DaemonUp:
		return d, nil
	case DaemonStale:
		return Daemon{}, fmt.Errorf("%w for project %s: %s records pid %d on %s, started %s, but that daemon is gone (killed or crashed); start `routines serve` again",
			ErrNoDaemon, p.Dir, p.RecordPath(), d.PID, d.Addr, d.Started.Local().Format(time.DateTime))
	case DaemonStarting:
		return Daemon{}, fmt.Errorf("%w for project %s yet: a daemon is starting; try again in a moment", ErrNoDaemon, p.Dir)
	default:
		return Daemon{}, fmt.Errorf("%w for project %s (no %s): start `routines serve` there, or pass --project DIR or --server URL", ErrNoDaemon, p.Dir, p.RecordPath())
	}
}

// DaemonLock is the lock a daemon holds on its project for its whole life.
type DaemonLock struct {
	p       Project
	release func()
}

// RunningError is the error of a daemon started on a project another one
// serves.
type RunningError struct {
	Project Project
	Other   Daemon // zero while the other one starts
}

func (e *RunningError) Error() string {
	if e.Other.PID == 0 {
		return fmt.Sprintf("another daemon is starting on project %s; one daemon serves a project at a time", e.Project.Dir)
	}
	return fmt.Sprintf("another daemon serves project %s: pid %d on http://%s, serving %s since %s; stop it first (kill %d), or serve another project with --project DIR",
		e.Project.Dir, e.Other.PID, e.Other.Addr, e.Other.Serving, e.Other.Started.Local().Format(time.DateTime), e.Other.PID)
}

// lockWait is how long LockDaemon tries: another process may be holding
// the lock for an instant to check it.
const lockWait = 300 * time.Millisecond

// LockDaemon takes the project's daemon lock, creating .routines/ when
// missing; a *RunningError when another daemon holds it.
func (p Project) LockDaemon() (*DaemonLock, error) {
	if _, err := p.Create(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	for {
		release, held, err := owner.TryLock(p.lockPath())
		if err != nil {
			return nil, err
		}
		if !held {
			return &DaemonLock{p: p, release: release}, nil
		}
		if time.Now().After(deadline) {
			other, _, _ := p.Daemon()
			return nil, &RunningError{Project: p, Other: other}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Publish records the daemon in serve.json, atomically: clients that
// find it find a daemon that listens.
func (l *DaemonLock) Publish(d Daemon) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	path := l.p.RecordPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("record the daemon: %w", err)
	}
	return os.Rename(tmp, path)
}

// Release removes the record and drops the lock.
func (l *DaemonLock) Release() error {
	rmErr := os.Remove(l.p.RecordPath())
	l.release()
	if rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		return fmt.Errorf("release the daemon lock: %w", rmErr)
	}
	return nil
}
