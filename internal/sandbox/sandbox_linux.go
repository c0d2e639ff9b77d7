package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
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
	// Network false denies TCP bind and connect. That needs Landlock ABI 4:
	// on an older kernel Run fails with ErrUnavailable.
	Network bool
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
	// Stdout and Stderr receive the child's output, from a goroutine that
	// reads a pipe, or directly when they are *os.File; nil discards it.
	// They may be the same writer. Nothing writes to them once Run returns.
	Stdout, Stderr io.Writer
	// Policy confines the child.
	Policy Policy
	// KillGrace is how long the group has between SIGTERM and SIGKILL once
	// the context is done, and how long Run keeps reading output held open
	// by a process that left the group; 2s when zero.
	KillGrace time.Duration
}

// Result is what the child did.
type Result struct {
	// ExitCode is the child's exit status, -1 when a signal ended it.
	ExitCode int
	// Signal names the signal that ended the child ("killed",
	// "terminated", "CPU time limit exceeded"); empty when it exited.
	Signal string
	// CPUUser and CPUSys are the CPU time of the child and of the
	// descendants it waited for.
	CPUUser, CPUSys time.Duration
	// MaxRSSKB is the largest resident set of the child or of one of the
	// descendants it waited for, in KiB.
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
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	grace := c.KillGrace
	if grace <= 0 {
		grace = defaultKillGrace
	}
	ruleset := -1
	if !c.Policy.Unconfined {
		var err error
		if ruleset, err = newRuleset(&c.Policy); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		defer unix.Close(ruleset)
	}
	null, err := devNull()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
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
	attr := &os.ProcAttr{
		Dir:   c.Dir,
		Env:   env,
		Files: []*os.File{null, out.stdout, out.stderr},
		// No Pdeathsig: it fires when the thread that started the child
		// ends, and a confined child's thread ends right away.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	}

	start := time.Now()
	startChild := func() (*os.Process, error) { return spawn(c.Path, args, attr, &c.Policy) }
	var p *os.Process
	if ruleset < 0 {
		p, err = startChild()
	} else {
		p, err = startConfined(ruleset, startChild)
	}
	if err != nil {
		out.closeAll()
		return nil, fmt.Errorf("sandbox: start %s: %w", c.Path, err)
	}
	out.start()
	g := &group{pgid: p.Pid, grace: grace}
	stop := context.AfterFunc(ctx, g.terminate)
	exitErr := waitExit(p.Pid)
	g.sweep()
	stop()
	ps, err := p.Wait()
	end := time.Now()
	out.wait(grace)
	if err := errors.Join(exitErr, err); err != nil {
		return nil, fmt.Errorf("sandbox: wait for %s: %w", c.Path, err)
	}
	return result(ps, end.Sub(start)), nil
}

// result reads what the kernel recorded of a child.
func result(ps *os.ProcessState, d time.Duration) *Result {
	r := &Result{
		ExitCode: ps.ExitCode(),
		CPUUser:  ps.UserTime(),
		CPUSys:   ps.SystemTime(),
		Duration: d,
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal().String()
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKB = ru.Maxrss
	}
	return r
}

// spawn starts a process and applies p's rlimits before the process runs
// its program: with limits to set, the child stops at its exec as a tracee
// of this thread, which sets them and lets it go.
func spawn(path string, args []string, attr *os.ProcAttr, p *Policy) (*os.Process, error) {
	if p.MemoryBytes <= 0 && p.CPUSeconds <= 0 {
		return os.StartProcess(path, args, attr)
	}
	// Only the tracing thread may detach the tracee.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sys := *attr.Sys
	sys.Ptrace = true
	traced := *attr
	traced.Sys = &sys
	proc, err := os.StartProcess(path, args, &traced)
	if err != nil {
		return nil, err
	}
	if err := limitStopped(proc.Pid, p); err != nil {
		_ = unix.Kill(-proc.Pid, unix.SIGKILL)
		_, _ = proc.Wait()
		return nil, err
	}
	return proc, nil
}

// limitStopped waits for the traced process pid to stop at its exec, sets
// its limits and detaches from it, which lets it run.
func limitStopped(pid int, p *Policy) error {
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
