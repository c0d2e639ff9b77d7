package sandbox

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// group signals a child's process group. Every signal is sent before the
// child is reaped: until then the child's pid names its group, so a signal
// cannot reach an unrelated process that was given a recycled pid.
type group struct {
	pgid  int
	grace time.Duration

	mu    sync.Mutex
	swept bool        // the group was killed after its leader exited; no more signals
	force *time.Timer // SIGKILL after grace, once terminate ran
}

// terminate asks the group to stop and forces it after the grace period.
func (g *group) terminate() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.swept {
		return
	}
	_ = unix.Kill(-g.pgid, unix.SIGTERM)
	g.force = time.AfterFunc(g.grace, g.kill)
}

func (g *group) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.swept {
		_ = unix.Kill(-g.pgid, unix.SIGKILL)
	}
}

// sweep kills whatever is left of the group, so that background jobs do not
// outlive the step, and ends the group's signalling.
func (g *group) sweep() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.swept = true
	if g.force != nil {
		g.force.Stop()
	}
	_ = unix.Kill(-g.pgid, unix.SIGKILL)
}
