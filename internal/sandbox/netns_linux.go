package sandbox

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A step with Policy.Network false runs in a network namespace that has
// only a loopback interface: no socket of any protocol (TCP, MPTCP, UDP,
// SCTP, raw, packet) reaches beyond it. Making a namespace costs about
// 0.7 ms, so the steps of one run share one, kept while the run's steps
// use it and dropped netnsIdle after its last step; joining it costs a
// setns on the starting thread. Two runs never share a namespace, so
// they cannot reach each other's loopback servers.
const (
	netnsIdle     = 10 * time.Second
	maxKeptNetns  = 64
	netnsLoopback = "lo"
)

type keptNetns struct {
	fd       int
	users    int
	dropped  bool
	lastUsed time.Time
}

var netnss struct {
	sync.Mutex
	kept  map[string]*keptNetns
	timer *time.Timer
}

// acquireNetns returns the network namespace of run, made now or kept.
// The caller calls releaseNetns when its child has joined it.
func acquireNetns(run string) (*keptNetns, error) {
	netnss.Lock()
	if n, ok := netnss.kept[run]; ok && run != "" {
		n.users++
		n.lastUsed = time.Now()
		netnss.Unlock()
		return n, nil
	}
	netnss.Unlock()
	fd, err := newNetns()
	if err != nil {
		return nil, err
	}
	n := &keptNetns{fd: fd, users: 1, lastUsed: time.Now()}
	if run == "" { // not shared: dropped as soon as the child has it
		n.dropped = true
		return n, nil
	}
	netnss.Lock()
	defer netnss.Unlock()
	if netnss.kept == nil {
		netnss.kept = map[string]*keptNetns{}
	}
	if old, ok := netnss.kept[run]; ok { // made at the same time by another step
		old.drop()
	}
	if len(netnss.kept) >= maxKeptNetns {
		var oldest string
		for k, v := range netnss.kept {
			if oldest == "" || v.lastUsed.Before(netnss.kept[oldest].lastUsed) {
				oldest = k
			}
		}
		netnss.kept[oldest].drop()
		delete(netnss.kept, oldest)
	}
	netnss.kept[run] = n
	if netnss.timer == nil {
		netnss.timer = time.AfterFunc(netnsIdle, dropIdleNetns)
	}
	return n, nil
}

// release ends a child's use of n.
func (n *keptNetns) release() {
	netnss.Lock()
	defer netnss.Unlock()
	n.users--
	if n.dropped && n.users == 0 {
		unix.Close(n.fd)
	}
}

// drop forgets n, with netnss locked.
func (n *keptNetns) drop() {
	n.dropped = true
	if n.users == 0 {
		unix.Close(n.fd)
	}
}

func dropIdleNetns() {
	netnss.Lock()
	defer netnss.Unlock()
	now := time.Now()
	for k, n := range netnss.kept {
		if n.users == 0 && now.Sub(n.lastUsed) >= netnsIdle {
			n.drop()
			delete(netnss.kept, k)
		}
	}
	if len(netnss.kept) == 0 {
		netnss.timer = nil
		return
	}
	netnss.timer.Reset(netnsIdle)
}

// newNetns makes a network namespace with its loopback up, on a thread
// that is discarded after, and returns a descriptor that keeps it.
func newNetns() (int, error) {
	type made struct {
		fd  int
		err error
	}
	ch := make(chan made, 1)
	go func() {
		// Never unlocked: the thread is in the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- made{-1, fmt.Errorf("%w: make a network namespace: %v", ErrUnavailable, err)}
			return
		}
		if err := loopbackUp(); err != nil {
			ch <- made{-1, fmt.Errorf("bring up loopback: %w", err)}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- made{-1, fmt.Errorf("open network namespace: %w", err)}
			return
		}
		ch <- made{fd, nil}
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
	ifr, err := unix.NewIfreq(netnsLoopback)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}
