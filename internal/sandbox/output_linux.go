package sandbox

import (
	"io"
	"os"
	"sync"
	"time"
)

// devNull is the child's stdin, and its stdout or stderr when there is no
// writer. One descriptor serves every child and is never closed.
var devNull = sync.OnceValues(func() (*os.File, error) {
	return os.OpenFile(os.DevNull, os.O_RDWR, 0)
})

// outputs connects a child's stdout and stderr to their writers. The pipes
// are the package's own, not os/exec's, so that a grandchild holding them
// open cannot hang the wait for the child.
type outputs struct {
	stdout, stderr *os.File   // the child's ends
	childEnds      []*os.File // pipe ends to close in the parent once the child has them
	copies         []copyJob
	done           chan struct{} // one value per finished copy
}

type copyJob struct {
	r *os.File
	w io.Writer
}

// openOutputs prepares the child's stdout and stderr: /dev/null for a nil
// writer, the file itself for an *os.File, else a pipe that one goroutine
// per writer copies from. Stdout and Stderr that are the same writer share
// one pipe, which keeps their lines in order.
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
	o.done = make(chan struct{}, len(o.copies))
	return o, nil
}

func (o *outputs) connect(w io.Writer, null *os.File) (*os.File, error) {
	switch w := w.(type) {
	case nil:
		return null, nil
	case *os.File:
		return w, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o.childEnds = append(o.childEnds, pw)
	o.copies = append(o.copies, copyJob{r: r, w: w})
	return pw, nil
}

// sameWriter reports whether a and b are one writer, as os/exec decides it:
// a writer of a type that cannot be compared is never the same.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() { _ = recover() }()
	return a == b
}

// closeAll releases every pipe end; for a child that did not start.
func (o *outputs) closeAll() {
	for _, f := range o.childEnds {
		f.Close()
	}
	for _, c := range o.copies {
		c.r.Close()
	}
}

// start closes the parent's copies of the child's ends, so that the pipes
// reach end of file when the child's group is gone, and starts copying.
func (o *outputs) start() {
	for _, f := range o.childEnds {
		f.Close()
	}
	for _, c := range o.copies {
		go func() {
			// Closing the read end on a writer error gives the child EPIPE
			// instead of a pipe that fills up and blocks it.
			_, _ = io.Copy(c.w, c.r)
			c.r.Close()
			o.done <- struct{}{}
		}()
	}
}

// wait returns when every copy has finished. A process that escaped the
// child's group may hold a pipe open: after grace, wait closes the read
// ends, which ends the copies.
func (o *outputs) wait(grace time.Duration) {
	if len(o.copies) == 0 {
		return
	}
	timeout := time.NewTimer(grace)
	defer timeout.Stop()
	for range o.copies {
		select {
		case <-o.done:
			continue
		case <-timeout.C:
			for _, c := range o.copies {
				c.r.Close()
			}
		}
		<-o.done
	}
}
