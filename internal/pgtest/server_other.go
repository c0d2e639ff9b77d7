//go:build !linux

package pgtest

import (
	"errors"
	"runtime"
)

// startServer fails: pgtest starts PostgreSQL on Linux only, the system
// the tests run on (run steps need it), so a test skips, or fails under CI.
func startServer(func(func()), []string) (*Server, error) {
	return nil, &unavailableError{errors.New("pgtest starts PostgreSQL on Linux only, and this is " + runtime.GOOS)}
}
