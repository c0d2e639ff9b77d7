package sandbox

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Check reports the Landlock ABI version the kernel offers. Its error wraps
// ErrUnavailable and says why in words a user can act on. The answer is
// asked of the kernel once per process.
func Check() (abi int, err error) {
	return checkOnce()
}

var checkOnce = sync.OnceValues(func() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch errno {
	case 0:
		return int(v), nil
	case unix.ENOSYS:
		return 0, fmt.Errorf("%w: the kernel has no Landlock (it needs Linux 5.13 or later built with CONFIG_SECURITY_LANDLOCK)", ErrUnavailable)
	case unix.EOPNOTSUPP:
		return 0, fmt.Errorf("%w: Landlock is built into the kernel but disabled (add landlock to the lsm= boot parameter)", ErrUnavailable)
	default:
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, errno)
	}
})

// Access rights, grouped by what a rule grants.
const (
	// fileRights are the rights the kernel accepts on a rule for a non-directory.
	fileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_IOCTL_DEV | unix.LANDLOCK_ACCESS_FS_RESOLVE_UNIX
	readExec = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_EXECUTE
	readOnly = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	device   = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	// readWrite is everything but making device nodes: a step running as
	// root could otherwise create a disk's node in its workspace and read it.
	readWrite = ^uint64(unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK)
)

// handledFS is every filesystem right that Landlock ABI abi can deny.
func handledFS(abi int) uint64 {
	switch {
	case abi >= 9: // resolve unix
		return 1<<17 - 1
	case abi >= 5: // ioctl dev
		return 1<<16 - 1
	case abi >= 3: // truncate
		return 1<<15 - 1
	case abi == 2: // refer
		return 1<<14 - 1
	default:
		return 1<<13 - 1
	}
}

// handledNet is every network right that Landlock ABI abi can deny.
func handledNet(abi int) uint64 {
	switch {
	case abi >= 10:
		return unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP |
			unix.LANDLOCK_ACCESS_NET_BIND_UDP | unix.LANDLOCK_ACCESS_NET_CONNECT_SEND_UDP
	case abi >= 4:
		return unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	default:
		return 0
	}
}

// pathRule is an opened path and what a rule on it grants, before masking
// by the handled rights and the kind of file.
type pathRule struct {
	fd     int
	dir    bool
	id     fileID
	access uint64
}

// fileID names a file: a rule grants access beneath the file it was
// opened on, whatever its path names later.
type fileID struct{ dev, ino uint64 }

// openRule opens path for a rule. The descriptor is O_PATH: it grants
// nothing by itself and needs no read permission.
func openRule(path string, access uint64) (pathRule, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathRule{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return pathRule{}, err
	}
	return pathRule{
		fd:     fd,
		dir:    st.Mode&unix.S_IFMT == unix.S_IFDIR,
		id:     fileID{dev: st.Dev, ino: st.Ino},
		access: access,
	}, nil
}

// systemRules are the rules every confined child gets. Their descriptors
// are opened once and kept for the life of the process, which saves three
// system calls per path per step.
var systemRules = sync.OnceValue(func() []pathRule {
	type grant struct {
		path   string
		access uint64
	}
	grants := []grant{
		{"/usr", readExec}, {"/bin", readExec}, {"/sbin", readExec},
		{"/lib", readExec}, {"/lib32", readExec}, {"/lib64", readExec},
		{"/etc", readExec}, {"/opt", readExec},
		{"/proc", readOnly}, {"/sys", readOnly},
		{"/dev", unix.LANDLOCK_ACCESS_FS_READ_DIR},
		{"/dev/null", device}, {"/dev/zero", device}, {"/dev/full", device},
		{"/dev/random", device}, {"/dev/urandom", device}, {"/dev/tty", device},
	}
	if target, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && !strings.HasPrefix(target, "/etc/") {
		grants = append(grants, grant{target, readOnly})
	}
	rules := make([]pathRule, 0, len(grants)+1)
	for _, g := range grants {
		if r, err := openRule(g.path, g.access); err == nil {
			rules = append(rules, r)
		}
	}
	// The /proc and /dev of a step's mount namespace (mountns_linux.go).
	if fd, err := procInstance(); err == nil {
		rules = append(rules, pathRule{fd: fd, dir: true, access: readOnly})
	}
	if fd, err := devInstance(); err == nil {
		rules = append(rules, pathRule{fd: fd, dir: true, access: unix.LANDLOCK_ACCESS_FS_READ_DIR})
		for _, d := range devices {
			if node, err := unix.Openat(fd, d, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err == nil {
				rules = append(rules, pathRule{fd: node, access: device})
			}
		}
	}
	return rules
})

// addRule adds r to the ruleset, granting what is both asked for and
// handled, and only file rights on a non-directory, which is all the kernel
// accepts there.
func addRule(ruleset int, r pathRule, handled uint64) error {
	attr := unix.LandlockPathBeneathAttr{Allowed_access: r.access & handled, Parent_fd: int32(r.fd)}
	if !r.dir {
		attr.Allowed_access &= fileRights
	}
	if attr.Allowed_access == 0 {
		return nil
	}
	_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&attr)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// newRuleset builds the ruleset of p and returns its descriptor (close on
// exec, as all Landlock ruleset descriptors are) and the files its policy
// paths named, ReadWrite then ReadOnly.
func newRuleset(p *Policy) (int, []fileID, error) {
	abi, err := Check()
	if err != nil {
		return -1, nil, err
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handledFS(abi)}
	if !p.Network {
		// The network namespace is what denies the network; Landlock
		// (ABI 4: TCP, ABI 10: UDP) is a second layer where it can.
		attr.Handled_access_net = handledNet(abi)
	}
	if abi >= 6 {
		// Abstract unix sockets are not files: no path rule covers them,
		// and with the network allowed the step shares the engine's
		// network namespace and with it every abstract socket of the host
		// (containerd's shims listened on such sockets). A step reaches
		// only those its own processes made.
		attr.Scoped = unix.LANDLOCK_SCOPE_SIGNAL | unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return -1, nil, fmt.Errorf("create landlock ruleset: %w", errno)
	}
	ruleset := int(fd)
	for _, r := range systemRules() {
		if err := addRule(ruleset, r, attr.Handled_access_fs); err != nil {
			unix.Close(ruleset)
			return -1, nil, fmt.Errorf("add landlock rule for a system path: %w", err)
		}
	}
	ids := make([]fileID, 0, len(p.ReadWrite)+len(p.ReadOnly))
	ids, err = addPolicyRules(ruleset, ids, p.ReadWrite, readWrite, attr.Handled_access_fs)
	if err == nil {
		ids, err = addPolicyRules(ruleset, ids, p.ReadOnly, readExec, attr.Handled_access_fs)
	}
	if err != nil {
		unix.Close(ruleset)
		return -1, nil, err
	}
	return ruleset, ids, nil
}

// addPolicyRules grants access on each of paths, and appends the files
// they named to ids.
func addPolicyRules(ruleset int, ids []fileID, paths []string, access, handled uint64) ([]fileID, error) {
	for _, path := range paths {
		if !filepath.IsAbs(path) {
			return ids, fmt.Errorf("policy path %q: not absolute", path)
		}
		r, err := openRule(path, access)
		if err != nil {
			return ids, fmt.Errorf("policy path %s: %w", path, err)
		}
		err = addRule(ruleset, r, handled)
		unix.Close(r.fd)
		if err != nil {
			return ids, fmt.Errorf("add landlock rule for %s: %w", path, err)
		}
		ids = append(ids, r.id)
	}
	return ids, nil
}

// stepThread is what a fresh thread takes on before it starts a child: the
// child inherits the thread's namespaces and Landlock domain.
type stepThread struct {
	ruleset int // Landlock ruleset to restrict the thread with; -1: none
	netns   int // network namespace to join; -1: the engine's
	mountns int // mount namespace to join; -1: the engine's
}

// onStepThread calls body on a fresh thread set up as t says, so that the
// processes body starts are confined and the engine is not. The thread is
// discarded after: a child started with Pdeathsig dies when body returns.
func onStepThread(t stepThread, body func() error) error {
	ch := make(chan error, 1)
	go t.run(ch, body)
	return <-ch
}

func (t stepThread) run(ch chan<- error, body func() error) {
	// Never unlocked once set up: the thread carries the domain and the
	// namespace and must end with this goroutine rather than go back to
	// the runtime's pool.
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The runtime parks the main thread for good instead of ending it,
		// and the kernel checks signals to the engine and access to its
		// /proc/PID against the main thread: a domain left there would let
		// the step reach the engine. Hold the main thread while another one
		// does the work, then give it back untouched.
		inner := make(chan error, 1)
		go t.run(inner, body)
		err := <-inner
		runtime.UnlockOSThread()
		ch <- err
		return
	}
	if t.mountns >= 0 {
		// A thread shares its root and working directory with the
		// process until it unshares them; only then may it join
		// another mount namespace.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			ch <- fmt.Errorf("unshare file system attributes: %w", err)
			return
		}
		if err := unix.Setns(t.mountns, unix.CLONE_NEWNS); err != nil {
			ch <- fmt.Errorf("join the mount namespace: %w", err)
			return
		}
	}
	if t.netns >= 0 {
		if err := unix.Setns(t.netns, unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("join the network namespace: %w", err)
			return
		}
	}
	if err := dropPrivileges(); err != nil {
		ch <- err
		return
	}
	if t.ruleset >= 0 {
		if err := restrictThread(t.ruleset); err != nil {
			ch <- err
			return
		}
	}
	ch <- body()
}

// restrictThread confines the calling thread, which must be locked and
// never unlocked after, with the Landlock domain of ruleset.
func restrictThread(ruleset int) error {
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		return fmt.Errorf("landlock restrict thread: %w", errno)
	}
	return nil
}

// dropPrivileges makes sure that the child the calling thread (locked,
// never unlocked after) starts runs with no_new_privs and without any
// capability, even when the engine runs as root. A step of such an engine
// would otherwise keep them all: read any process's environ and maps
// (CAP_SYS_ADMIN), raise its own rlimits (CAP_SYS_RESOURCE), read
// /proc/kcore (CAP_SYS_RAWIO). Capabilities, like no_new_privs and
// Landlock domains, belong to the thread; with no_new_privs, exec cannot
// give them back, not even to uid 0.
func dropPrivileges() error {
	// A raw prctl, not an all-threads one: no_new_privs is per thread.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	var none [2]unix.CapUserData
	if err := unix.Capset(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &none[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}
