package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const defaultKillGrace = 2 * time.Second

// Supported reports whether this system can confine children at all: on
// Linux it can, though a layer may be missing (see Layers).
func Supported() error { return nil }

// Run starts c confined by c.Policy, waits for it and reports what it did.
// When ctx is done first, the child's group is terminated. The error is for
// a child that could not be confined or started (or a ctx already done); a
// child that exits non-zero or is killed is a Result.
func Run(ctx context.Context, c *Command) (*Result, error) {
	return run(ctx, c, pidfdWorks())
}

// run runs c; pidfd false waits for the child's exit without a pidfd, as
// on a kernel older than 5.3.
func run(ctx context.Context, c *Command, pidfd bool) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	grace := c.KillGrace
	if grace <= 0 {
		grace = defaultKillGrace
	}
	null, err := devNull()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	j, err := newJail(c)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer j.close()
	out, err := openOutputs(c.Stdout, c.Stderr, null)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	args, env := c.Args, c.Env
	if len(args) == 0 {
		args = []string{c.Path}
	}
	if env == nil {
		env = []string{}
	}
	// Pdeathsig: the child dies with the thread that starts and waits for
	// it, which lives as long as the step, so a step dies with the engine.
	// What it started is in its cgroup, which KillRun kills before the run
	// resumes.
	sys := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if j.cgroup.fd >= 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = j.cgroup.fd
	}
	childFD := -1
	if out.piped() && pidfd {
		// The child's exit then wakes the ppoll that reads its output.
		sys.PidFD = &childFD
	}
	attr := &syscall.ProcAttr{
		Dir:   c.Dir,
		Env:   env,
		Files: []uintptr{null.Fd(), out.stdout, out.stderr},
		Sys:   sys,
	}
	var res *Result
	err = onStepThread(j.thread(), func() error {
		start := time.Now()
		pid, err := spawn(c.Path, args, attr, &c.Policy, j.cgroup)
		j.started()
		if err != nil {
			out.closeAll()
			return fmt.Errorf("start %s: %w", c.Path, err)
		}
		out.started()
		g := &group{pgid: pid, grace: grace, cgroup: j.cgroup}
		stop := func() bool { return false }
		if ctx.Done() != nil {
			stop = context.AfterFunc(ctx, g.terminate)
		}
		exitErr := out.waitExit(pid, childFD)
		g.sweep()
		stop()
		if childFD >= 0 {
			unix.Close(childFD)
		}
		ws, ru, err := reap(pid)
		end := time.Now()
		out.drain(grace)
		if err := errors.Join(exitErr, err); err != nil {
			return fmt.Errorf("wait for %s: %w", c.Path, err)
		}
		res = result(ws, &ru, end.Sub(start))
		j.cgroup.usage().apply(res)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return res, nil
}

// pidfdWorks reports whether the kernel gives pidfds (Linux 5.3), which
// clone can return and ppoll can wait on.
var pidfdWorks = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
})

// reap waits for the exited child pid and collects it.
func reap(pid int) (unix.WaitStatus, unix.Rusage, error) {
	var ws unix.WaitStatus
	var ru unix.Rusage
	for {
		_, err := unix.Wait4(pid, &ws, 0, &ru)
		if err != unix.EINTR {
			return ws, ru, os.NewSyscallError("wait4", err)
		}
	}
}

// result reads what the kernel recorded of a child.
func result(ws unix.WaitStatus, ru *unix.Rusage, d time.Duration) *Result {
	r := &Result{
		ExitCode: -1,
		CPUUser:  time.Duration(ru.Utime.Nano()),
		CPUSys:   time.Duration(ru.Stime.Nano()),
		MaxRSSKB: ru.Maxrss,
		Duration: d,
	}
	switch {
	case ws.Exited():
		r.ExitCode = ws.ExitStatus()
	case ws.Signaled():
		r.Signal = ws.Signal().String()
	}
	return r
}

// apply puts what the step's cgroup measured in r.
func (u cgroupUsage) apply(r *Result) {
	if u.cpuExact {
		r.CPUUser, r.CPUSys = u.cpuUser, u.cpuSys
	}
	if u.peakKB > 0 {
		r.MaxRSSKB = u.peakKB
	}
	r.OOMKilled = u.oomKilled
	r.PidsLimited = u.pidsLimited
}

// spawn starts a process and applies p's rlimits and cg's v1 cgroups
// before the process runs its program: with those to set, the child stops
// at its exec as a tracee of this thread, which sets them and lets it go.
func spawn(path string, args []string, attr *syscall.ProcAttr, p *Policy, cg *stepCgroup) (int, error) {
	if p.MemoryBytes <= 0 && p.CPUSeconds <= 0 && !cg.needsEnter() {
		return forkExec(path, args, attr)
	}
	// Only the tracing thread may detach the tracee.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sys := *attr.Sys
	sys.Ptrace = true
	traced := *attr
	traced.Sys = &sys
	pid, err := forkExec(path, args, &traced)
	if err != nil {
		return 0, err
	}
	if err := limitStopped(pid, p, cg); err != nil {
		_ = unix.Kill(-pid, unix.SIGKILL)
		_, _, _ = reap(pid)
		if sys.PidFD != nil && *sys.PidFD >= 0 {
			unix.Close(*sys.PidFD)
			*sys.PidFD = -1
		}
		return 0, err
	}
	return pid, nil
}

// forkExec starts a process, with os.StartProcess's error.
func forkExec(path string, args []string, attr *syscall.ProcAttr) (int, error) {
	pid, err := syscall.ForkExec(path, args, attr)
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	return pid, nil
}

// limitStopped waits for the traced process pid to stop at its exec, sets
// its limits and cgroups and detaches from it, which lets it run.
func limitStopped(pid int, p *Policy, cg *stepCgroup) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("wait for exec: %w", err)
		}
	}
	if !ws.Stopped() {
		return fmt.Errorf("wait for exec: process ended (status %#x)", uint32(ws))
	}
	if err := setLimits(pid, p); err != nil {
		return err
	}
	if cg.needsEnter() {
		if err := cg.enter(pid); err != nil {
			return err
		}
	}
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	return nil
}

// setLimits applies p's rlimits to the process pid.
func setLimits(pid int, p *Policy) error {
	if p.MemoryBytes > 0 {
		lim := unix.Rlimit{Cur: uint64(p.MemoryBytes), Max: uint64(p.MemoryBytes)}
		if err := unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil); err != nil {
			return fmt.Errorf("set memory limit: %w", err)
		}
	}
	if p.CPUSeconds > 0 {
		lim := unix.Rlimit{Cur: uint64(p.CPUSeconds), Max: uint64(p.CPUSeconds) + 1}
		if err := unix.Prlimit(pid, unix.RLIMIT_CPU, &lim, nil); err != nil {
			return fmt.Errorf("set CPU limit: %w", err)
		}
	}
	return nil
}

// waitExit returns when the process pid has exited, without reaping it: as
// long as it is a zombie, its pid names its group and no other process.
func waitExit(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
