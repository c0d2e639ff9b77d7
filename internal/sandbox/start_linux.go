package sandbox

import (
	"fmt"
	"syscall"
)

// Start calls start, which starts one long-lived child process (such as
// exec.Cmd.Start, or what calls it) with sys as its SysProcAttr, confined
// by p as a step of run is: Landlock, no_new_privs and no capabilities,
// the run's mount namespace and, with p.Network false, its network
// namespace, and a cgroup of its own (name names it) with p's limits where
// cgroup v2 sets them. It is for children that talk to the engine over
// their stdin and stdout while it runs (MCP servers of agent steps); Run
// is for steps. Rlimits and cgroup v1 limits, which need the child stopped
// at its exec, are not applied.
//
// start runs on a thread that is discarded after: it must only start the
// child, not keep state bound to its thread. stop kills whatever is left
// of the child's processes and removes its cgroup; call it once the child
// is done.
func Start(p *Policy, run, name string, sys *syscall.SysProcAttr, start func() error) (stop func(), err error) {
	j, err := newJail(&Command{Policy: *p, Run: run, Name: name})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	j.cgroup.dropSlot()
	if j.cgroup.fd >= 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = j.cgroup.fd
	}
	err = onStepThread(j.thread(), func() error {
		defer j.started()
		return start()
	})
	if err != nil {
		j.close()
		return nil, err
	}
	return j.close, nil
}
