package sandbox

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Namespaces of a run: a step with Policy.Network false runs in a network
// namespace that has only a loopback interface, so no socket of any
// protocol (TCP, MPTCP, UDP, SCTP, raw, packet) reaches beyond it; every
// confined step runs in a mount namespace in which only its grants exist
// (mountns_linux.go). Making them costs about a millisecond, so the steps
// of one run share them: kept while the run's steps use them, dropped
// nsIdle after the last one; joining costs a setns on the starting thread.
// Two runs never share a namespace, so they cannot reach each other's
// loopback servers or workspaces.
const (
	nsIdle     = 10 * time.Second
	maxKeptNS  = 64
	loopbackIf = "lo"
)

// keptNS is a namespace kept open by a descriptor for the steps of a run.
type keptNS struct {
	fd       int
	users    int
	dropped  bool
	lastUsed time.Time
}

var namespaces struct {
	sync.Mutex
	kept  map[string]*keptNS
	timer *time.Timer
}

// acquireNS returns the namespace kept under key, or makes it with make.
// An empty key is never shared: the namespace is dropped as soon as its
// child has it. The caller calls release once its child has joined it.
func acquireNS(key string, make func() (int, error)) (*keptNS, error) {
	namespaces.Lock()
	if n, ok := namespaces.kept[key]; ok && key != "" {
		n.users++
		n.lastUsed = time.Now()
		namespaces.Unlock()
		return n, nil
	}
	namespaces.Unlock()
	fd, err := make()
	if err != nil {
		return nil, err
	}
	n := &keptNS{fd: fd, users: 1, lastUsed: time.Now()}
	if key == "" {
		n.dropped = true
		return n, nil
	}
	namespaces.Lock()
	defer namespaces.Unlock()
	if namespaces.kept == nil {
		namespaces.kept = map[string]*keptNS{}
	}
	if old, ok := namespaces.kept[key]; ok { // made at the same time by another step
		old.drop()
	}
	if len(namespaces.kept) >= maxKeptNS {
		var oldest string
		for k, v := range namespaces.kept {
			if oldest == "" || v.lastUsed.Before(namespaces.kept[oldest].lastUsed) {
				oldest = k
			}
		}
		namespaces.kept[oldest].drop()
		delete(namespaces.kept, oldest)
	}
	namespaces.kept[key] = n
	if namespaces.timer == nil {
		namespaces.timer = time.AfterFunc(nsIdle, dropIdleNS)
	}
	return n, nil
}

// release ends a child's use of n.
func (n *keptNS) release() {
	namespaces.Lock()
	defer namespaces.Unlock()
	n.users--
	if n.dropped && n.users == 0 {
		closeNS(n.fd)
	}
}

// drop forgets n, with namespaces locked.
func (n *keptNS) drop() {
	n.dropped = true
	if n.users == 0 {
		closeNS(n.fd)
	}
}

// closeNS closes the last descriptor of a namespace.
func closeNS(fd int) {
	unix.Close(fd)
}

func dropIdleNS() {
	namespaces.Lock()
	defer namespaces.Unlock()
	now := time.Now()
	for k, n := range namespaces.kept {
		if n.users == 0 && now.Sub(n.lastUsed) >= nsIdle {
			n.drop()
			delete(namespaces.kept, k)
		}
	}
	if len(namespaces.kept) == 0 {
		namespaces.timer = nil
		return
	}
	namespaces.timer.Reset(nsIdle)
}

// newNetns makes a network namespace with its loopback up, on a thread
// that is discarded after, and returns a descriptor that keeps it.
func newNetns() (int, error) {
	return onThrowawayThread(func() (int, error) {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return -1, fmt.Errorf("%w: make a network namespace: %v", ErrUnavailable, err)
		}
		if err := loopbackUp(); err != nil {
			return -1, fmt.Errorf("bring up loopback: %w", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open network namespace: %w", err)
		}
		return fd, nil
	})
}

// onThrowawayThread calls f on a locked thread that is never given back to
// the runtime, so that the namespaces f moves the thread into end with it,
// and returns what f returned.
func onThrowawayThread(f func() (int, error)) (int, error) {
	type made struct {
		fd  int
		err error
	}
	ch := make(chan made, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		fd, err := f()
		ch <- made{fd, err}
	}()
	m := <-ch
	return m.fd, m.err
}

// loopbackUp sets the loopback interface of the calling thread's network
// namespace up.
func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(loopbackIf)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}
