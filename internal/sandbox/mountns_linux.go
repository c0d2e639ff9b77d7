package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The steps of a run see a file system made for the run, in a mount
// namespace of their own: a read-only tmpfs as root, holding the system
// paths (read-only), a /proc that shows a step its own processes only,
// a /dev of the few devices Landlock grants, and the policy's paths, at
// the same places as on the host. Nothing else exists there: no /tmp of
// the host, no /run or /var/run (the Docker socket, D-Bus), no other
// project, and a Policy.Hide path (the project's .routines: its store, its
// vault key, other runs' workspaces) is an empty read-only directory, even
// when it lies inside the routine directory, but for the run's workspace
// inside it. Landlock still applies on top, on the same files: a bind
// mount shows the host's own inodes.
//
// The root is made the way bubblewrap makes one: a tmpfs on /tmp of the
// new namespace becomes the root, with the host's root under it at /old,
// so that grants anywhere (/tmp included) can be bound from /old; the
// new root is then built on a second tmpfs and pivoted into, and the host's
// tree is detached. It is a namespace, not a chroot: the same layers will
// hold an OCI image as the root of a step.
//
// /proc is one procfs instance for all namespaces, mounted with
// hidepid=ptraceable: a process is listed only to a reader that may ptrace
// it, which Landlock refuses across domains, so a step sees the processes
// of its own domain, not the engine, not another step.

// systemMounts are the host paths every namespace holds read-only. Those
// that are links (/bin → usr/bin) are links there too.
var systemMounts = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/sys"}

// devices are the nodes of /dev, as Landlock grants them.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devInstance is the /dev that every namespace shows: a detached,
// read-only tmpfs holding the devices, each made with the host's device
// number, and the links to /proc/self/fd that shells use.
var devInstance = sync.OnceValues(func() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open tmpfs: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "mode", "0755"); err != nil {
		return -1, fmt.Errorf("tmpfs mode: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("make tmpfs: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("mount tmpfs: %w", err)
	}
	for _, d := range devices {
		var st unix.Stat_t
		if err := unix.Stat("/dev/"+d, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			continue
		}
		if err := unix.Mknodat(fd, d, unix.S_IFCHR|0o666, int(st.Rdev)); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("make /dev/%s: %w", d, err)
		}
	}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := unix.Symlinkat(target, fd, name); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("make /dev/%s: %w", name, err)
		}
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("make /dev read-only: %w", err)
	}
	return fd, nil
})

// procInstance is the procfs that every namespace's /proc shows: a
// detached mount, so the host's /proc is not touched.
var procInstance = sync.OnceValues(func() (int, error) {
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open procfs: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "hidepid", "ptraceable"); err != nil {
		return -1, fmt.Errorf("procfs hidepid: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("make procfs: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("mount procfs: %w", err)
	}
	return fd, nil
})

// mountNamespaces reports whether this host lets the engine make mount
// namespaces (root), and why not.
var mountNamespaces = sync.OnceValue(func() error {
	fd, err := newMountNS(&Policy{})
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
})

// mountPlan is what a namespace holds, with host paths resolved.
type mountPlan struct {
	binds []bind
	hide  []string
}

// bind puts the host's source at target, read-only or not.
type bind struct {
	source, target string
	readOnly       bool
}

// planMounts resolves p's paths on the host, in the engine's namespace,
// where links resolve as the grants were meant. A path is bound at the
// place it names and, when a link leads elsewhere, there too.
func planMounts(p *Policy) (*mountPlan, error) {
	plan := &mountPlan{}
	add := func(path string, readOnly bool) error {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return fmt.Errorf("policy path %s: %w", path, err)
		}
		plan.binds = append(plan.binds, bind{source: real, target: filepath.Clean(path), readOnly: readOnly})
		if real != filepath.Clean(path) {
			plan.binds = append(plan.binds, bind{source: real, target: real, readOnly: readOnly})
		}
		return nil
	}
	if target, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && !strings.HasPrefix(target, "/etc/") {
		plan.binds = append(plan.binds, bind{source: target, target: target, readOnly: true})
	}
	for _, path := range p.ReadWrite {
		if err := add(path, false); err != nil {
			return nil, err
		}
	}
	for _, path := range p.ReadOnly {
		if err := add(path, true); err != nil {
			return nil, err
		}
	}
	for _, path := range p.Hide {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			plan.hide = append(plan.hide, real)
		}
	}
	return plan, nil
}

// newMountNS makes the mount namespace of p on a thread that is discarded
// after, and returns a descriptor that keeps it.
func newMountNS(p *Policy) (int, error) {
	plan, err := planMounts(p)
	if err != nil {
		return -1, err
	}
	proc, err := procInstance()
	if err != nil {
		return -1, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	dev, err := devInstance()
	if err != nil {
		return -1, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return onThrowawayThread(func() (int, error) { return buildMountNS(plan, proc, dev) })
}

// buildMountNS makes a mount namespace for the calling thread alone and
// builds the plan's root in it.
func buildMountNS(plan *mountPlan, proc, dev int) (int, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return -1, fmt.Errorf("%w: make a mount namespace: %v", ErrUnavailable, err)
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"make mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"mount scratch root", func() error {
			return unix.Mount("routines", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
		}},
		{"make /old", func() error { return unix.Mkdir("/tmp/old", 0o755) }},
		{"make /new", func() error { return unix.Mkdir("/tmp/new", 0o755) }},
		{"pivot to scratch root", func() error { return unix.PivotRoot("/tmp", "/tmp/old") }},
		{"enter scratch root", func() error { return unix.Chdir("/") }},
		{"mount new root", func() error {
			return unix.Mount("routines", "/new", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
		}},
		{"mount system paths", mountSystem},
		{"mount /proc", func() error { return attach(proc, "/new/proc", 0o555) }},
		{"mount /dev", func() error { return attach(dev, "/new/dev", 0o755) }},
		{"make /tmp", func() error { return unix.Mkdir("/new/tmp", 0o755) }},
		{"mount grants", plan.mountGrants},
		{"make /.host", func() error { return unix.Mkdir("/new/.host", 0o755) }},
		{"pivot to new root", func() error { return unix.PivotRoot("/new", "/new/.host") }},
		{"enter new root", func() error { return unix.Chdir("/") }},
		{"detach host", func() error { return unix.Unmount("/.host", unix.MNT_DETACH) }},
		{"remove /.host", func() error { return unix.Rmdir("/.host") }},
		{"make root read-only", func() error { return remountReadOnly("/") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return -1, fmt.Errorf("mount namespace: %s: %w", s.what, err)
		}
	}
	fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open mount namespace: %w", err)
	}
	return fd, nil
}

// mountSystem binds the system paths read-only, and copies the links
// among them.
func mountSystem() error {
	for _, path := range systemMounts {
		var st unix.Stat_t
		if err := unix.Lstat("/old"+path, &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target, err := os.Readlink("/old" + path)
			if err != nil {
				return err
			}
			if err := unix.Symlink(target, "/new"+path); err != nil {
				return err
			}
			continue
		}
		if err := bindMount(bind{source: path, target: path, readOnly: true}); err != nil {
			return err
		}
	}
	return nil
}

// attach mounts a clone of the detached mount instance at path, a new
// directory.
func attach(instance int, path string, mode uint32) error {
	if err := unix.Mkdir(path, mode); err != nil {
		return err
	}
	tree, err := unix.OpenTree(instance, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	return unix.MoveMount(tree, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// mountGrants binds the grants and hides the hidden paths, parents first,
// so that a grant inside a hidden path (the run's workspace inside
// .routines) shows through it.
func (plan *mountPlan) mountGrants() error {
	type entry struct {
		path string
		bind *bind
	}
	var entries []entry
	for i := range plan.binds {
		entries = append(entries, entry{plan.binds[i].target, &plan.binds[i]})
	}
	for _, h := range plan.hide {
		entries = append(entries, entry{path: h})
	}
	slices.SortStableFunc(entries, func(a, b entry) int {
		return strings.Count(a.path, "/") - strings.Count(b.path, "/")
	})
	var hidden []string
	for _, e := range entries {
		if e.bind != nil {
			if err := bindMount(*e.bind); err != nil {
				return err
			}
			continue
		}
		if !underAny(e.path, plan.binds) {
			continue // not visible anyway
		}
		if err := unix.Mount("routines", "/new"+e.path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755"); err != nil {
			return fmt.Errorf("hide %s: %w", e.path, err)
		}
		hidden = append(hidden, e.path)
	}
	for _, h := range hidden {
		if err := remountReadOnly("/new" + h); err != nil {
			return err
		}
	}
	return nil
}

// underAny reports whether path lies inside one of the binds' targets.
func underAny(path string, binds []bind) bool {
	for _, b := range binds {
		if path != b.target && strings.HasPrefix(path, strings.TrimSuffix(b.target, "/")+"/") {
			return true
		}
	}
	return false
}

// bindMount binds /old+b.source at /new+b.target, making the mount point
// (a directory, or a file for a file) in the new root where it is missing.
func bindMount(b bind) error {
	var st unix.Stat_t
	if err := unix.Stat("/old"+b.source, &st); err != nil {
		return fmt.Errorf("bind %s: %w", b.source, err)
	}
	target := "/new" + b.target
	if err := makeMountPoint(target, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
		return fmt.Errorf("bind %s: %w", b.target, err)
	}
	if err := unix.Mount("/old"+b.source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", b.source, err)
	}
	if b.readOnly {
		return remountReadOnly(target)
	}
	return nil
}

// makeMountPoint makes path (a directory, or an empty file) and its
// parents where they are missing. It never follows a link: a link on the
// way would put the mount somewhere else.
func makeMountPoint(path string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return fmt.Errorf("%s is a link", path)
		}
		return nil
	}
	if err := makeMountPoint(filepath.Dir(path), true); err != nil {
		return err
	}
	if dir {
		if err := unix.Mkdir(path, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	}
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// remountReadOnly makes the mount at path read-only.
func remountReadOnly(path string) error {
	if err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", path, err)
	}
	return nil
}
