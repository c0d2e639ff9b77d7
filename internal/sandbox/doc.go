// Package sandbox starts the child process of a `run` step, confined to what
// the routine may touch, and reports what it used. It knows nothing of the
// store or the engine: it gets a Command and returns a Result.
//
// # Confinement without a helper process
//
// Landlock domains belong to threads, and a forked child inherits the domain
// of the thread that forked it. Run therefore starts each confined child from
// a fresh goroutine that locks its OS thread, sets no_new_privs on that
// thread alone, restricts that thread alone with the step's ruleset and then
// starts the child. The goroutine never unlocks the thread, so when it
// returns the Go runtime ends the thread instead of reusing it, and while
// such a goroutine holds a locked thread the runtime spawns new threads from
// a clean template thread. The engine itself is never confined. Whatever the
// parent opens for the child (/dev/null, the output pipes, the descriptors
// of the rules' paths) is opened before the thread is restricted.
//
// A fresh thread is what keeps steps apart: a thread that restricted itself
// again would nest the new domain in the old one, and a process of an
// earlier step could then reach the later step's processes (read their
// environment, signal them). The ruleset, by contrast, is kept between
// steps of one policy (see rulesets_linux.go): each thread it restricts
// gets a domain of its own. A kept ruleset serves only while the policy's
// paths name the files it was built on, and is dropped after a few idle
// seconds.
//
// The raw Landlock system calls come from golang.org/x/sys/unix rather than
// from go-landlock's landlock/syscall package, because that package also
// carries all-threads helpers that pull in the cgo psx library, which the
// engine must not link.
//
// # What a confined child may touch
//
// A ruleset handles every filesystem right of the kernel's Landlock ABI, so
// anything not granted below is denied:
//
//   - Policy.ReadWrite (the routine directory, the run workspace,
//     permissions.write): every right except creating device nodes.
//   - Policy.ReadOnly (permissions.read): read and execute.
//   - /usr, /bin, /sbin, /lib, /lib32, /lib64, /etc and /opt: read and
//     execute; /proc and /sys: read; the target of /etc/resolv.conf when it
//     is a link out of /etc (systemd-resolved): read.
//   - /dev: listing only, plus read and write on /dev/null, /dev/zero,
//     /dev/full, /dev/random, /dev/urandom and /dev/tty. Reading all of /dev
//     would hand a step running as root every block device, and with them
//     every file on disk.
//
// System paths that do not exist are skipped; a Policy path that does not
// exist is an error. /tmp is neither readable nor writable: the engine gives
// each step a TMPDIR inside its run workspace.
//
// With Policy.Network false, TCP bind and connect are denied (Landlock ABI 4
// and later; UDP too from ABI 10), as is connecting to abstract unix sockets
// outside the step (ABI 6). From ABI 6 a step can signal only processes of
// its own domain, so it cannot signal the engine, while the engine can still
// signal the step, and a step cannot ptrace a process outside its domain.
//
// The starting thread also drops every capability before the child starts,
// and no_new_privs keeps exec from granting them again, even to uid 0. A
// step of an engine running as root keeps uid 0 but cannot read another
// process's environ or maps (CAP_SYS_ADMIN passes Landlock's ptrace check
// there), read /proc/kcore, or raise its own rlimits.
//
// # Output and exit
//
// The child is started with syscall.ForkExec. A writer that is not an
// *os.File gets a pipe of the package's own, which the goroutine calling
// Run reads itself with ppoll, together with a pidfd that becomes readable
// when the child exits: no copying goroutine, no epoll registration, no
// per-step read buffer. Until the child exits, the parent keeps its copies
// of the pipes' write ends, so a pipe wakes ppoll only with output, and
// the exit is a single wake-up instead of one per pipe reaching end of
// file. After the exit and the group's sweep, Run drops those copies and
// reads what is left without waiting, unless a process still holds a pipe.
// Without pidfds (Linux before 5.3), Run reads the pipes until they reach
// end of file and checks for the exit every 20ms meanwhile.
//
// # Processes and limits
//
// The child leads its own process group. When the context is done the whole
// group gets SIGTERM, then SIGKILL after Command.KillGrace; when the child
// exits, whatever is left of its group is killed, so background jobs do not
// outlive a step. A process that leaves the group (setsid) escapes this, but
// not its confinement; Run stops reading its output after KillGrace.
//
// RLIMIT_AS and RLIMIT_CPU are set on the child alone, with prlimit:
// rlimits are per process, and setting them on the starting thread would
// limit the engine. So that the child runs no instruction of its program
// unlimited, a child with limits starts as a tracee of the starting thread
// (PTRACE_TRACEME), stops at its exec, gets its limits and is detached. An
// engine that is itself being traced with strace -f cannot start such a
// child.
//
// # Other systems
//
// Everything above is Linux, in files named *_linux.go. On every other
// system the package keeps its types, Supported, Run and Start return
// Unsupported's error, and Layers reports every layer missing: the engine
// builds there and refuses, with what to do, the routines whose steps need
// a sandbox (docs/platforms.md).
package sandbox
