//go:build !linux

package pgtest

import (
	"errors"
	"runtime"
	"testing"
)

// runner is empty: no server ever runs here.
type runner struct{}

// startServer fails: pgtest starts PostgreSQL on Linux only, the system
// the tests run on (run steps need it), so a test skips, or fails under CI.
func startServer(func(func()), []string, *KeyPair) (*Server, error) {
	return nil, &unavailableError{errors.New("pgtest starts PostgreSQL on Linux only, and this is " + runtime.GOOS)}
}

// Stop is never called: there is no server to stop.
func (s *Server) Stop(t testing.TB) { t.Fatal("pgtest: no server runs on " + runtime.GOOS) }

// Start is never called: there is no server to start.
func (s *Server) Start(t testing.TB) { t.Fatal("pgtest: no server runs on " + runtime.GOOS) }
