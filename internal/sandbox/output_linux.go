package sandbox

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// devNull is the child's stdin, and its stdout or stderr when there is no
// writer. One descriptor serves every child and is never closed.
var devNull = sync.OnceValues(func() (*os.File, error) {
	return os.OpenFile(os.DevNull, os.O_RDWR, 0)
})

// outputs connects a child's stdout and stderr to their writers. The pipes
// are the package's own, not os/exec's, so that a grandchild holding them
// open cannot hang the wait for the child, and they bypass the runtime's
// poller: the goroutine that runs the child reads them itself, in the same
// ppoll that waits for the child's exit, so there is no copying goroutine to
// start, wake and wait for, and nothing to register with epoll.
type outputs struct {
	stdout, stderr uintptr    // the child's ends
	files          []*os.File // writers that are files, kept alive until the child has them
	childEnds      []int      // the parent's copies of the pipes' write ends, until the child exits (see waitExit)
	streams        [2]stream
	n              int // streams in use
	open           int // streams not yet closed
	buf            *[bufSize]byte
	fds            [3]unix.PollFd
}

// stream is the read end of one pipe and the writer it feeds; fd is -1
// once the pipe is closed.
type stream struct {
	fd int
	w  io.Writer
}

const bufSize = 32 << 10

// bufs holds read buffers between runs, so a step does not allocate one.
var bufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// openOutputs prepares the child's stdout and stderr: /dev/null for a nil
// writer, the file itself for an *os.File, else a pipe. Stdout and Stderr
// that are the same writer share one pipe, which keeps their lines in
// order.
func openOutputs(stdout, stderr io.Writer, null *os.File) (*outputs, error) {
	o := &outputs{}
	var err error
	if o.stdout, err = o.connect(stdout, null); err != nil {
		o.closeAll()
		return nil, err
	}
	if stderr != nil && sameWriter(stdout, stderr) {
		o.stderr = o.stdout
	} else if o.stderr, err = o.connect(stderr, null); err != nil {
		o.closeAll()
		return nil, err
	}
	return o, nil
}

func (o *outputs) connect(w io.Writer, null *os.File) (uintptr, error) {
	switch w := w.(type) {
	case nil:
		return null.Fd(), nil
	case *os.File:
		// Fd puts the descriptor back in blocking mode, as
		// os.StartProcess does for a child's files.
		o.files = append(o.files, w)
		return w.Fd(), nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, os.NewSyscallError("pipe2", err)
	}
	// Only the parent's end is non-blocking: the flag belongs to the open
	// file, and the child's end is a separate one.
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return 0, os.NewSyscallError("fcntl", err)
	}
	o.childEnds = append(o.childEnds, p[1])
	o.streams[o.n] = stream{fd: p[0], w: w}
	o.n++
	o.open++
	return uintptr(p[1]), nil
}

// sameWriter reports whether a and b are one writer, as os/exec decides it:
// a writer of a type that cannot be compared is never the same.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() { _ = recover() }()
	return a == b
}

// piped reports whether any output goes through a pipe.
func (o *outputs) piped() bool { return o.n > 0 }

// started lets go of the writers that are files, which the child has now.
func (o *outputs) started() {
	o.files = nil
}

// closeChildEnds closes the parent's copies of the child's ends, so that
// the pipes reach end of file when the child's group is gone.
func (o *outputs) closeChildEnds() {
	for _, fd := range o.childEnds {
		unix.Close(fd)
	}
	o.childEnds = nil
}

// closeAll releases every pipe end; for a child that did not start, or
// output that is no longer read.
func (o *outputs) closeAll() {
	o.started()
	o.closeChildEnds()
	for i := range o.streams[:o.n] {
		o.closeStream(&o.streams[i])
	}
	if o.buf != nil {
		bufs.Put(o.buf)
		o.buf = nil
	}
}

// closeStream stops reading s. Closing the read end gives a child that
// still writes EPIPE instead of a pipe that fills up and blocks it.
func (o *outputs) closeStream(s *stream) {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
		o.open--
	}
}

// exitPollInterval is how often waitExit looks for the child's exit when
// it has no pidfd and a pipe is still open.
const exitPollInterval = 20 * time.Millisecond

// waitExit copies output until the child pid has exited, and returns
// without reaping it.
//
// pidfd, when not -1, is the child's pidfd, which ppoll reports readable
// once the child has exited, and the parent still holds the child's ends
// of the pipes: a pipe then wakes ppoll only with output, never with the
// end of file that comes as the child exits, a moment before its pidfd
// is ready. The exit is one wake-up, and drain reads what is left.
func (o *outputs) waitExit(pid, pidfd int) error {
	if pidfd < 0 {
		o.closeChildEnds()
	}
	tick := unix.NsecToTimespec(int64(exitPollInterval))
	for o.open > 0 {
		if pidfd < 0 {
			if _, err := o.poll(-1, &tick); err != nil {
				o.stop()
				break
			}
			if hasExited(pid) {
				return nil
			}
			continue
		}
		ev, err := o.poll(pidfd, nil)
		switch {
		case err != nil:
			o.stop()
		case ev&unix.POLLIN != 0:
			return nil
		case ev != 0: // not expected of a pidfd: do without it
			pidfd = -1
			o.closeChildEnds()
		}
	}
	// No pipe is read: only the exit is left to wait for.
	return waitExit(pid)
}

// stop gives up reading the pipes, when ppoll fails, which is not expected:
// a child then gets EPIPE rather than block on a pipe nothing reads.
func (o *outputs) stop() {
	for i := range o.streams[:o.n] {
		o.closeStream(&o.streams[i])
	}
}

// hasExited reports whether the process pid has exited, without reaping it.
func hasExited(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
	// Without a child to report, waitid leaves info zeroed.
	return err != nil || info.Signo != 0
}

// drain copies the rest of the output once the child has exited and its
// group is gone. A process that escaped the group may hold a pipe open:
// after grace, drain closes the read ends and returns.
func (o *outputs) drain(grace time.Duration) {
	defer o.closeAll()
	o.closeChildEnds()
	// What the child's group wrote is in the pipes already: read it
	// without waiting, and wait only for a pipe still held open.
	for i := range o.streams[:o.n] {
		o.copy(&o.streams[i], true)
	}
	if o.open == 0 {
		return
	}
	deadline := time.Now().Add(grace)
	for o.open > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		ts := unix.NsecToTimespec(int64(left))
		if _, err := o.poll(-1, &ts); err != nil {
			return
		}
	}
}

// poll waits until a pipe or extra (when not -1) is ready, or timeout
// passes (nil: no timeout), and copies what the ready pipes hold. It
// returns the events of extra.
func (o *outputs) poll(extra int, timeout *unix.Timespec) (int16, error) {
	fds := o.fds[:0]
	for _, s := range o.streams[:o.n] {
		if s.fd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
		}
	}
	if extra >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(extra), Events: unix.POLLIN})
	}
	if _, err := unix.Ppoll(fds, timeout, nil); err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, err
	}
	j := 0
	for i := range o.streams[:o.n] {
		s := &o.streams[i]
		if s.fd < 0 {
			continue
		}
		if fds[j].Revents != 0 {
			o.copy(s, false)
		}
		j++
	}
	if extra < 0 {
		return 0, nil
	}
	return fds[j].Revents, nil
}

// copy reads s and writes what it got: once, and again while reads fill
// the buffer, or with all until the pipe is empty. It closes s at end of
// file, on an error, and when the writer fails.
func (o *outputs) copy(s *stream, all bool) {
	if o.buf == nil {
		o.buf = bufs.Get().(*[bufSize]byte)
	}
	for s.fd >= 0 {
		n, err := unix.Read(s.fd, o.buf[:])
		switch {
		case n > 0:
			if m, err := s.w.Write(o.buf[:n]); err != nil || m != n {
				o.closeStream(s)
				return
			}
			if n < bufSize && !all {
				return
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default: // end of file, or an error
			o.closeStream(s)
			return
		}
	}
}
