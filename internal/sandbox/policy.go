package sandbox

import (
	"errors"
	"io"
	"time"
)

// Unsupported is the error of Supported on the system goos other than
// Linux: what needs the sandbox there, and what to do instead.
func Unsupported(goos string) error {
	return errors.New("run steps and agent MCP servers started by command need Linux (Landlock, namespaces, cgroups), and this binary runs on " +
		goos + ": run such routines on a Linux host; the step kinds that run inside the engine work here (http, sql, llm, agent with url MCP servers, slack, email, state, emit, classify, routine)")
}

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

// Resources are the limits a step's processes share. A zero field takes
// the host's default (see DefaultResources); a negative one means no limit.
type Resources struct {
	MemoryBytes int64   // memory.max: the step is OOM-killed above it
	Pids        int64   // pids.max: fork fails above it
	CPU         float64 // cores' worth of CPU time per period
}

// Layer names, as Layers reports them and Policy.AllowMissing takes them.
const (
	LayerLandlock = "landlock"
	LayerNetwork  = "network"
	LayerMount    = "mount"
	LayerCgroup   = "cgroup"
	LayerMemory   = "memory"
	LayerPids     = "pids"
	LayerCPU      = "cpu"
)

// LayerStatus says whether this host gives one layer of the sandbox.
type LayerStatus struct {
	Name   string // one of the Layer constants
	Active bool
	// Detail says how the layer is given, or why it is not.
	Detail string
	// Fix says what to do to get a missing layer; empty when active.
	Fix string
}

// ErrUnavailable is wrapped by the errors of Check and Run when the host
// does not give a layer of the sandbox (Landlock, a namespace, a cgroup
// controller), or not the part of it a Policy needs.
var ErrUnavailable = errors.New("sandbox layer unavailable")
