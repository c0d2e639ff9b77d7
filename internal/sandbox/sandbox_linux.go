package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Policy says what a confined child may touch.
type Policy struct {
	// ReadWrite are absolute paths the child may read, write and execute
	// beneath: the routine directory, the run workspace, permissions.write.
	ReadWrite []string
	// ReadOnly are absolute paths the child may read and execute beneath,
	// beyond the system paths the package adds: permissions.read.
	ReadOnly []string
	// Hide are paths that, where a grant holds them, the child sees as
	// empty read-only directories (the project's .routines), but for the
	// grants inside them (the run's workspace). It needs mount namespaces.
	Hide []string
	// Network false runs the child in a network namespace of its run with
	// only a loopback interface (and denies TCP and, from Landlock ABI 10,
	// UDP on top). Without network namespaces (no root) Run fails with
	// ErrUnavailable, unless AllowMissing names "network".
	Network bool
	// Resources limit the step's processes together, in a cgroup of their
	// own; zero fields take DefaultResources. A limit the host cannot set
	// fails Run with ErrUnavailable when the field was set explicitly,
	// unless AllowMissing names its layer ("memory", "pids", "cpu").
	Resources Resources
	// AllowMissing names layers the operator chose to run without where
	// the host lacks them (see Layers).
	AllowMissing []string
	// MemoryBytes, when positive, is the child's RLIMIT_AS.
	MemoryBytes int64
	// CPUSeconds, when positive, is the child's RLIMIT_CPU: SIGXCPU when it
	// is spent, SIGKILL a second of CPU later.
	CPUSeconds int64
	// Unconfined runs the child without Landlock. The engine sets it only
	// when the kernel lacks Landlock and the user passed --allow-unconfined.
	// Process group, limits and rusage still apply.
	Unconfined bool
}

// Command is one child to run.
type Command struct {
	// Path is the program to execute; relative to Dir when relative.
	Path string
	// Args are the arguments, Args[0] the program name as in exec.Cmd;
	// empty means {Path}.
	Args []string
	// Dir is the working directory; empty means the engine's.
	Dir string
	// Env is the whole environment of the child, already scrubbed; nil
	// means an empty one, never the engine's.
	Env []string
	// Stdout and Stderr receive the child's output: directly when they are
	// *os.File, else through a pipe that the goroutine calling Run reads,
	// so they are written to one at a time, on that goroutine; nil
	// discards it. They may be the same writer. A writer that blocks holds
	// up its stream, the other one and Run. Nothing writes to them once
	// Run returns.
	Stdout, Stderr io.Writer
	// Policy confines the child.
	Policy Policy
	// Run and Name name the child's cgroup: KillRun(Run) kills whatever
	// the steps of a run left, after a crash of the engine.
	Run, Name string
	// KillGrace is how long the group has between SIGTERM and SIGKILL once
	// the context is done, and how long Run keeps reading output held open
	// by a process that left the group; 2s when zero.
	KillGrace time.Duration
}

// Result is what the child did.
type Result struct {
	// ExitCode is the child's exit status, -1 when a signal ended it.
	ExitCode int
	// OOMKilled reports that the kernel killed a process of the step for
	// going over its memory limit; PidsLimited that a fork or clone of
	// the step failed at its pids limit.
	OOMKilled, PidsLimited bool
	// Signal names the signal that ended the child ("killed",
	// "terminated", "CPU time limit exceeded"); empty when it exited.
	Signal string
	// CPUUser and CPUSys are the CPU time of all the step's processes
	// (from its cgroup; without cgroup v2, of the child and of the
	// descendants it waited for).
	CPUUser, CPUSys time.Duration
	// MaxRSSKB is the peak memory of the step's processes together (from
	// its memory cgroup; without one, the largest resident set of the
	// child or of one of the descendants it waited for), in KiB.
	MaxRSSKB int64
	// Duration runs from the start of the child to its exit.
	Duration time.Duration
}

const defaultKillGrace = 2 * time.Second

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
