package sandbox

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// group signals a child's process group. Every signal is sent before the
// child is reaped: until then the child's pid names its group, so a signal
// cannot reach an unrelated process that was given a recycled pid.
//
// A process that left the group (setsid) is still in the step's cgroup,
// which the group kills along with it.
type group struct {
	pgid   int
	grace  time.Duration
	cgroup *stepCgroup

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
		g.cgroup.kill()
	}
}

// sweep kills whatever is left of the step, so that background jobs do not
// outlive it, and ends the group's signalling.
func (g *group) sweep() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.swept = true
	if g.force != nil {
		g.force.Stop()
	}
	_ = unix.Kill(-g.pgid, unix.SIGKILL)
	g.cgroup.kill()
}
