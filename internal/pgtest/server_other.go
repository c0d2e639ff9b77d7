//go:build !linux

package pgtest

import (
	"errors"
	"runtime"
	"testing"
)

// StartServer ends t: pgtest starts PostgreSQL on Linux only, the system
// the tests run on (run steps need it), so it skips, or fails under CI.
func StartServer(t testing.TB) *Server {
	t.Helper()
	unavailable(t, errors.New("pgtest starts PostgreSQL on Linux only, and this is "+runtime.GOOS))
	return nil
}
