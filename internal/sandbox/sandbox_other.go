//go:build !linux

package sandbox

import (
	"context"
	"runtime"
	"syscall"
)

// The sandbox is made of Linux's Landlock, namespaces and cgroups, which
// no other system offers in a form it could use instead. There, whatever
// would start a confined child is refused with what to do instead; the
// step kinds that run inside the engine need no sandbox and work.
var errPlatform = Unsupported(runtime.GOOS)

// Supported reports whether this system can confine children at all: it
// cannot, and the error says why and what to do.
func Supported() error { return errPlatform }

// Check reports that this system has no Landlock.
func Check() (abi int, err error) { return 0, errPlatform }

// Require refuses every routine that starts a confined child.
func Require(need, allow []string) error { return errPlatform }

// Layers reports every layer missing, for the one reason.
func Layers() []LayerStatus {
	var out []LayerStatus
	for _, name := range []string{LayerLandlock, LayerNetwork, LayerMount, LayerCgroup, LayerMemory, LayerPids, LayerCPU} {
		out = append(out, LayerStatus{Name: name, Detail: "needs Linux; this binary runs on " + runtime.GOOS,
			Fix: "run routines with run steps on a Linux host; the other step kinds work here"})
	}
	return out
}

// Run refuses to start c.
func Run(ctx context.Context, c *Command) (*Result, error) { return nil, errPlatform }

// Start refuses to start the child.
func Start(p *Policy, run, name string, sys *syscall.SysProcAttr, start func() error) (stop func(), err error) {
	return nil, errPlatform
}

// KillRun has nothing to kill: no step of a run ever started a process on
// this system.
func KillRun(run string) error { return nil }
