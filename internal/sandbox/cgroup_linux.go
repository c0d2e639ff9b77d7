package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A step's processes live in a cgroup of their own, made for the step under
// the engine's cgroup and removed after it:
//
//   - cgroup v2 (the unified hierarchy, /sys/fs/cgroup on most hosts): the
//     child is cloned straight into the step's cgroup (CLONE_INTO_CGROUP),
//     which costs nothing per spawn. At the end the whole cgroup is killed
//     (cgroup.kill), so nothing the step started outlives it, setsid and
//     double forks included; cpu.stat gives the step's exact CPU time.
//     Where the memory, pids and cpu controllers are delegated to the
//     engine, the step's limits are set on its cgroup.
//   - cgroup v1 controllers (hosts where memory, pids or cpu are not in the
//     v2 hierarchy, such as these machines): a v1 cgroup costs a mkdir and
//     an rmdir of a tenth of a millisecond each, so the engine keeps a pool
//     of them and moves each child into one while it is stopped at its exec.
//
// Step cgroups are named <run>.<step>.<n> under one directory, so that
// KillRun finds every process of a run, also after a crash of the engine
// that started them.

// DefaultResources are the limits of a step that sets none: enough for a
// build, not enough for a fork bomb or a memory hog to harm the engine or
// the host.
func DefaultResources() Resources {
	return Resources{MemoryBytes: defaultMemory(), Pids: 4096}
}

// defaultMemory is half the host's memory.
var defaultMemory = sync.OnceValue(func() int64 {
	var info unix.Sysinfo_t
	if unix.Sysinfo(&info) != nil {
		return 0
	}
	return int64(info.Totalram) * int64(info.Unit) / 2
})

// withDefaults fills r's zero fields with the defaults.
func (r Resources) withDefaults() Resources {
	d := DefaultResources()
	if r.MemoryBytes == 0 {
		r.MemoryBytes = d.MemoryBytes
	}
	if r.Pids == 0 {
		r.Pids = d.Pids
	}
	return r
}

// controllers the engine limits steps with.
var limitControllers = []string{"memory", "pids", "cpu"}

// cgroupHost is what this host offers for step cgroups, found once.
type cgroupHost struct {
	// v2 is the directory holding step cgroups in the unified hierarchy;
	// empty when there is none the engine may write, with v2Err saying why.
	v2    string
	v2Err error
	// v2Limits are the controllers enabled for step cgroups in v2.
	v2Limits map[string]bool
	// v1 maps a controller missing from v2 to the directory of the
	// engine's pool of v1 cgroups for it.
	v1 map[string]string
}

var hostCgroups = sync.OnceValue(findCgroups)

// makeCgroupDir makes dir, the parent of step cgroups, or finds it, and
// checks that this process may make cgroups in it: an engine not run as
// root finds the directory a root engine made, and may not.
func makeCgroupDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make the steps' cgroup %s: %w", dir, err)
	}
	probe := filepath.Join(dir, fmt.Sprintf("probe.%d-0", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make a step cgroup in %s: %w", dir, err)
	}
	return unix.Rmdir(probe)
}

func findCgroups() *cgroupHost {
	h := &cgroupHost{v2Limits: map[string]bool{}, v1: map[string]string{}}
	own, err := ownCgroups()
	if err != nil {
		h.v2Err = err
		return h
	}
	mounts, err := cgroupMounts()
	if err != nil {
		h.v2Err = err
		return h
	}
	if mnt, ok := mounts[""]; ok {
		h.v2, h.v2Err = prepareV2(filepath.Join(mnt, own[""]), h.v2Limits)
		if h.v2 != "" {
			sweepDeadEngines(h.v2, removeV2)
		}
	} else {
		h.v2Err = errors.New("no cgroup2 file system is mounted")
	}
	for _, c := range limitControllers {
		if h.v2Limits[c] {
			continue
		}
		mnt, ok := mounts[c]
		if !ok {
			continue
		}
		dir := filepath.Join(mnt, own[c], "routines")
		if err := makeCgroupDir(dir); err == nil {
			h.v1[c] = dir
			sweepDeadEngines(dir, removeV1)
		}
	}
	return h
}

// ownCgroups reads the engine's cgroup per controller from
// /proc/self/cgroup; "" is the v2 one.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own, nil
}

// cgroupMounts maps each mounted v1 controller (and "" for cgroup2) to
// its mount point.
func cgroupMounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	mounts := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent maj:min root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			if _, ok := mounts[""]; !ok {
				mounts[""] = fields[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(tail[2], ",") {
				if opt == "memory" || opt == "pids" || opt == "cpu" {
					mounts[opt] = fields[4]
				}
			}
		}
	}
	return mounts, s.Err()
}

// prepareV2 makes the directory of step cgroups under the engine's own v2
// cgroup own, with as many of the limit controllers enabled in it as the
// host delegates, which it records in limits. A v2 cgroup with processes
// cannot hand controllers to its children, so the engine first moves
// itself into a leaf of its own cgroup ("engine"), as systemd expects of a
// service with Delegate=yes.
func prepareV2(own string, limits map[string]bool) (string, error) {
	dir := filepath.Join(own, "routines")
	if err := makeCgroupDir(dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return "", fmt.Errorf("cgroup.kill is missing (it needs Linux 5.14): %w", err)
	}
	avail, _ := os.ReadFile(filepath.Join(own, "cgroup.controllers"))
	var want []string
	for _, c := range limitControllers {
		if slices.Contains(strings.Fields(string(avail)), c) {
			want = append(want, "+"+c)
		}
	}
	if len(want) == 0 {
		return dir, nil
	}
	enable := func() error {
		return os.WriteFile(filepath.Join(own, "cgroup.subtree_control"), []byte(strings.Join(want, " ")), 0)
	}
	err := enable()
	if errors.Is(err, unix.EBUSY) {
		leaf := filepath.Join(own, "engine")
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return dir, nil
		}
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return dir, nil
		}
		err = enable()
	}
	if err != nil {
		return dir, nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(want, " ")), 0); err != nil {
		return dir, nil
	}
	for _, c := range want {
		limits[c[1:]] = true
	}
	return dir, nil
}

// stepCgroup is the cgroup of one step's processes.
type stepCgroup struct {
	host *cgroupHost
	v2   string // the step's v2 directory, "" without v2
	fd   int    // open on v2, for CLONE_INTO_CGROUP; -1 without
	slot *v1Slot
}

var stepSeq atomic.Uint64

// newStepCgroup makes the cgroup of a step of run named name, with limits
// r set as far as the host allows; missing lists the limits the host
// could not set.
func newStepCgroup(run, name string, r Resources) (cg *stepCgroup, missing []string, err error) {
	h := hostCgroups()
	cg = &stepCgroup{host: h, fd: -1}
	if h.v2 != "" {
		// The engine's pid keeps apart the cgroups of engines that ran
		// the same step: one that died left its cgroup behind.
		cg.v2 = filepath.Join(h.v2, fmt.Sprintf("%s.%s.%d-%d", cgroupName(run), cgroupName(name), os.Getpid(), stepSeq.Add(1)))
		err := os.Mkdir(cg.v2, 0o755)
		if errors.Is(err, os.ErrExist) { // a dead engine of the same pid
			removeV2(cg.v2)
			err = os.Mkdir(cg.v2, 0o755)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("make step cgroup: %w", err)
		}
		fd, err := unix.Open(cg.v2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			cg.remove()
			return nil, nil, fmt.Errorf("open step cgroup: %w", err)
		}
		cg.fd = fd
		if err := cg.setV2Limits(r); err != nil {
			cg.remove()
			return nil, nil, err
		}
	}
	var v1 []string
	for _, c := range limitControllers {
		switch {
		case h.v2Limits[c]:
		case h.v1[c] != "":
			// Moving a process into a v1 cgroup takes a global lock
			// that waits for an RCU grace period (≈ 0.2 ms): only the
			// controllers that limit something.
			if c == "memory" && r.MemoryBytes > 0 || c == "pids" && r.Pids > 0 || c == "cpu" && r.CPU > 0 {
				v1 = append(v1, c)
			}
		case c == "memory" && r.MemoryBytes > 0, c == "pids" && r.Pids > 0, c == "cpu" && r.CPU > 0:
			missing = append(missing, c)
		}
	}
	if len(v1) > 0 {
		if cg.slot, err = acquireSlot(h, v1, r); err != nil {
			cg.remove()
			return nil, nil, err
		}
	}
	return cg, missing, nil
}

// cgroupName keeps the characters of s that are safe in a cgroup name.
func cgroupName(s string) string {
	if s == "" {
		return "step"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func (cg *stepCgroup) setV2Limits(r Resources) error {
	h := cg.host
	write := func(file, value string) error {
		if err := os.WriteFile(filepath.Join(cg.v2, file), []byte(value), 0); err != nil {
			return fmt.Errorf("set %s: %w", file, err)
		}
		return nil
	}
	if h.v2Limits["memory"] && r.MemoryBytes > 0 {
		if err := write("memory.max", strconv.FormatInt(r.MemoryBytes, 10)); err != nil {
			return err
		}
		// Without swap the limit is what the step gets, as in v1.
		_ = write("memory.swap.max", "0")
	}
	if h.v2Limits["pids"] && r.Pids > 0 {
		if err := write("pids.max", strconv.FormatInt(r.Pids, 10)); err != nil {
			return err
		}
	}
	if h.v2Limits["cpu"] && r.CPU > 0 {
		if err := write("cpu.max", fmt.Sprintf("%d 100000", int64(r.CPU*100000))); err != nil {
			return err
		}
	}
	return nil
}

// dropSlot gives back the v1 slot of a child that cannot be moved into it
// (one that exec.Cmd starts, with no stop at its exec).
func (cg *stepCgroup) dropSlot() {
	if cg.slot != nil {
		cg.slot.release(false)
		cg.slot = nil
	}
}

// needsEnter reports whether the child must be moved into v1 cgroups
// while it is stopped at its exec.
func (cg *stepCgroup) needsEnter() bool { return cg.slot != nil }

// enter moves the stopped child pid into the v1 cgroups. It writes to
// descriptors opened beforehand: the thread that calls it is confined.
func (cg *stepCgroup) enter(pid int) error {
	b := []byte(strconv.Itoa(pid))
	for c, fd := range cg.slot.procs {
		if _, err := unix.Write(fd, b); err != nil {
			return fmt.Errorf("move the step into its %s cgroup: %w", c, err)
		}
	}
	return nil
}

// kill kills every process in the step's cgroups.
func (cg *stepCgroup) kill() {
	if cg.v2 != "" {
		_ = os.WriteFile(filepath.Join(cg.v2, "cgroup.kill"), []byte("1"), 0)
	}
	if cg.slot != nil {
		for _, dir := range cg.slot.dirs {
			killProcs(dir)
		}
	}
}

// killProcs SIGKILLs the processes listed in a v1 cgroup, which has no
// cgroup.kill, until none is left.
func killProcs(dir string) {
	for range 100 {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			return
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// cgroupUsage is what a step's cgroups recorded.
type cgroupUsage struct {
	cpuUser, cpuSys time.Duration
	cpuExact        bool
	peakKB          int64 // 0 when unknown
	oomKilled       bool
	pidsLimited     bool
}

// usage reads what the step used and whether it hit a limit.
func (cg *stepCgroup) usage() cgroupUsage {
	var u cgroupUsage
	if cg.v2 != "" {
		stat := readKeyed(filepath.Join(cg.v2, "cpu.stat"))
		if us, ok := stat["user_usec"]; ok {
			u.cpuUser = time.Duration(us) * time.Microsecond
			u.cpuSys = time.Duration(stat["system_usec"]) * time.Microsecond
			u.cpuExact = true
		}
		if cg.host.v2Limits["memory"] {
			u.peakKB = readInt(filepath.Join(cg.v2, "memory.peak")) / 1024
			u.oomKilled = readKeyed(filepath.Join(cg.v2, "memory.events"))["oom_kill"] > 0
		}
		if cg.host.v2Limits["pids"] {
			u.pidsLimited = readKeyed(filepath.Join(cg.v2, "pids.events"))["max"] > 0
		}
	}
	if s := cg.slot; s != nil {
		if dir, ok := s.dirs["memory"]; ok {
			u.peakKB = readInt(filepath.Join(dir, "memory.max_usage_in_bytes")) / 1024
			u.oomKilled = readKeyed(filepath.Join(dir, "memory.oom_control"))["oom_kill"] > s.oomBase
		}
		if dir, ok := s.dirs["pids"]; ok {
			u.pidsLimited = readKeyed(filepath.Join(dir, "pids.events"))["max"] > s.pidsBase
		}
	}
	return u
}

// remove kills what is left and removes the step's cgroup, waiting up to
// a second for its processes to be gone.
func (cg *stepCgroup) remove() {
	if cg.fd >= 0 {
		unix.Close(cg.fd)
		cg.fd = -1
	}
	if cg.v2 != "" {
		removeV2(cg.v2)
	}
	if cg.slot != nil {
		// cgroup.kill of the v2 cgroup has killed the step's processes,
		// which are in the slot too.
		cg.slot.release(cg.v2 == "")
		cg.slot = nil
	}
}

// removeV2 kills the processes of the v2 cgroup dir and removes it once
// they are gone, waiting up to about a second; it reports whether it did.
func removeV2(dir string) bool {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	for wait := 50 * time.Microsecond; ; wait *= 2 {
		err := unix.Rmdir(dir)
		if err != unix.EBUSY {
			return err == nil || err == unix.ENOENT
		}
		if wait > 500*time.Millisecond {
			return false
		}
		time.Sleep(wait)
	}
}

// removeV1 kills the processes of a v1 cgroup and removes it.
func removeV1(dir string) bool {
	killProcs(dir)
	return unix.Rmdir(dir) == nil
}

// KillRun kills every process that steps of run started and that is still
// alive, with their cgroups, for a run whose engine died: its resumption
// must not run beside what the dead engine left. It returns once they are
// gone. Without cgroup v2 there is nothing to find them by: the step
// itself died with its engine (Pdeathsig), and KillRun does nothing.
func KillRun(run string) error {
	h := hostCgroups()
	if h.v2 == "" {
		return nil
	}
	entries, err := os.ReadDir(h.v2)
	if err != nil {
		return fmt.Errorf("sandbox: kill the processes of run %s: %w", run, err)
	}
	prefix := cgroupName(run) + "."
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) && !removeV2(filepath.Join(h.v2, e.Name())) {
			return fmt.Errorf("sandbox: kill the processes of run %s: cgroup %s still has processes", run, e.Name())
		}
	}
	return nil
}

// sweepDeadEngines kills and removes, with remove, the step cgroups that
// engines which are no longer alive left in dir: the steps of an engine
// that was killed, when nothing resumed their runs, and its v1 slots.
// Their names end in .<engine pid>-<n>.
func sweepDeadEngines(dir string, remove func(string) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndexByte(name, '.')
		pid, _, ok := strings.Cut(name[i+1:], "-")
		n, err := strconv.Atoi(pid)
		if !e.IsDir() || i < 0 || !ok || err != nil || n == os.Getpid() {
			continue
		}
		if unix.Kill(n, 0) == unix.ESRCH {
			remove(filepath.Join(dir, name))
		}
	}
}

// readKeyed reads a cgroup file of "key value" lines.
func readKeyed(path string) map[string]int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// readInt reads a cgroup file holding one number; 0 when it cannot.
func readInt(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// v1Slot is a set of v1 cgroups, one per controller, that one step at a
// time uses.
type v1Slot struct {
	key      string // its controllers, the key of its pool
	dirs     map[string]string
	procs    map[string]int // controller → cgroup.procs, open for writing
	limits   Resources      // as set now
	oomBase  int64          // oom_kill count when the step started
	pidsBase int64          // pids.events max count when the step started
}

var v1Pool struct {
	sync.Mutex
	free map[string][]*v1Slot // by controllers
	n    int
}

// acquireSlot takes a slot of the controllers from the pool, or makes one,
// and sets r on it.
func acquireSlot(h *cgroupHost, controllers []string, r Resources) (*v1Slot, error) {
	key := strings.Join(controllers, ",")
	v1Pool.Lock()
	var s *v1Slot
	if free := v1Pool.free[key]; len(free) > 0 {
		s, v1Pool.free[key] = free[len(free)-1], free[:len(free)-1]
	} else {
		v1Pool.n++
		s = &v1Slot{key: key, dirs: map[string]string{}, procs: map[string]int{}, limits: Resources{MemoryBytes: -2, Pids: -2, CPU: -2}}
		// Named by the engine's pid: the pools of two engines on one
		// host must never share a slot.
		name := fmt.Sprintf("slot.%d-%d", os.Getpid(), v1Pool.n)
		for _, c := range controllers {
			s.dirs[c] = filepath.Join(h.v1[c], name)
		}
	}
	v1Pool.Unlock()
	if err := s.prepare(r); err != nil {
		return nil, err
	}
	return s, nil
}

// prepare makes the slot's cgroups if they are new, sets r where it
// differs from what is set, and records the counters to compare with at
// the end.
func (s *v1Slot) prepare(r Resources) error {
	for c, dir := range s.dirs {
		if _, ok := s.procs[c]; ok {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("make step cgroup: %w", err)
		}
		fd, err := unix.Open(filepath.Join(dir, "cgroup.procs"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open step cgroup: %w", err)
		}
		s.procs[c] = fd
	}
	write := func(c, file, value string) error {
		if err := os.WriteFile(filepath.Join(s.dirs[c], file), []byte(value), 0); err != nil {
			return fmt.Errorf("set %s: %w", file, err)
		}
		return nil
	}
	limit := func(n int64) string {
		if n <= 0 {
			return "-1"
		}
		return strconv.FormatInt(n, 10)
	}
	if dir, ok := s.dirs["memory"]; ok {
		if s.limits.MemoryBytes != r.MemoryBytes {
			if err := write("memory", "memory.limit_in_bytes", limit(r.MemoryBytes)); err != nil {
				return err
			}
			_ = write("memory", "memory.swappiness", "0")
		}
		_ = write("memory", "memory.max_usage_in_bytes", "0")
		s.oomBase = readKeyed(filepath.Join(dir, "memory.oom_control"))["oom_kill"]
	}
	if dir, ok := s.dirs["pids"]; ok {
		if s.limits.Pids != r.Pids {
			value := "max"
			if r.Pids > 0 {
				value = strconv.FormatInt(r.Pids, 10)
			}
			if err := write("pids", "pids.max", value); err != nil {
				return err
			}
		}
		s.pidsBase = readKeyed(filepath.Join(dir, "pids.events"))["max"]
	}
	if _, ok := s.dirs["cpu"]; ok && s.limits.CPU != r.CPU {
		quota := int64(-1)
		if r.CPU > 0 {
			quota = int64(r.CPU * 100000)
		}
		if err := write("cpu", "cpu.cfs_period_us", "100000"); err != nil {
			return err
		}
		if err := write("cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
			return err
		}
	}
	s.limits = r
	return nil
}

// release gives the slot back to the pool, after killing what is left in
// it when kill is set.
func (s *v1Slot) release(kill bool) {
	if kill {
		for _, dir := range s.dirs {
			killProcs(dir)
		}
	}
	v1Pool.Lock()
	if v1Pool.free == nil {
		v1Pool.free = map[string][]*v1Slot{}
	}
	v1Pool.free[s.key] = append(v1Pool.free[s.key], s)
	v1Pool.Unlock()
}
