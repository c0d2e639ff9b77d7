package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

const (
	// maxLineBytes cuts longer lines into pieces, so one line without a
	// newline (a binary blob) cannot grow without bound.
	maxLineBytes = 64 << 10
	// maxStepLogBytes is how much of one step's output is stored and shown;
	// the rest is counted and reported in one system line.
	maxStepLogBytes = 16 << 20
	// stderrTailBytes is how much of the end of stderr goes into the error payload.
	stderrTailBytes = 2 << 10
	// logFlushLines and logFlushEvery bound how long lines wait in memory
	// before they are written to the store.
	logFlushLines = 512
	logFlushEvery = 250 * time.Millisecond
)

// runLog collects the log lines of one run: it numbers them, redacts
// secrets, shows them to the observer and writes them to the store in
// batches.
type runLog struct {
	// ctx outlives the run's cancellation: logs of a cancelled run are kept.
	ctx     context.Context
	x       *runExec
	mu      sync.Mutex
	seq     int64
	pending []routine.LogLine
	stop    chan struct{}
	done    chan struct{}
}

func newRunLog(ctx context.Context, x *runExec) *runLog {
	l := &runLog{ctx: ctx, x: x, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l
}

func (l *runLog) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.flush()
		}
	}
}

// close stops the background flusher and writes what is left.
func (l *runLog) close() {
	close(l.stop)
	<-l.done
	l.flush()
}

// add records one line of text for a step.
func (l *runLog) add(step string, stream routine.Stream, text string) {
	text = l.x.redact(sanitize(text))
	l.mu.Lock()
	l.seq++
	line := routine.LogLine{RunID: l.x.run.ID, Step: step, Seq: l.seq, Time: l.x.e.clock.Now().UTC(), Stream: stream, Text: text}
	l.pending = append(l.pending, line)
	full := len(l.pending) >= logFlushLines
	l.mu.Unlock()
	l.x.e.observer.Log(line)
	if full {
		l.flush()
	}
}

// system records a line the engine writes about a step.
func (l *runLog) system(step, format string, args ...any) {
	l.add(step, routine.StreamSystem, fmt.Sprintf(format, args...))
}

// flush writes pending lines to the store. A failure to store logs is
// reported once per batch but does not fail the run.
func (l *runLog) flush() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := l.x.e.store.LogAppend(l.ctx, batch); err != nil {
		l.x.e.logger.Error("store logs", "run_id", l.x.run.ID, "routine", l.x.r.Name, "lines", len(batch), "err", err)
	}
}

// sanitize makes text safe to store and print: valid UTF-8, and no control
// characters other than tab (escape sequences cannot repaint the terminal).
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '\uFFFD'
		}
		return r
	}, strings.TrimSuffix(s, "\r"))
}

// stepOutput is the io.Writer a step's stdout or stderr goes to. It cuts
// the stream into lines. Both streams of a step share a budget.
type stepOutput struct {
	log    *runLog
	step   string
	stream routine.Stream
	budget *stepBudget
	buf    []byte
	tail   []byte // last bytes of the stream, for stderr_tail
	keep   bool   // whether to keep a tail
}

// stepBudget counts the bytes of a step's output against maxStepLogBytes.
type stepBudget struct {
	mu      sync.Mutex
	used    int64
	dropped int64
}

func (b *stepBudget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+int64(n) > maxStepLogBytes {
		b.dropped += int64(n)
		return false
	}
	b.used += int64(n)
	return true
}

func (w *stepOutput) Write(p []byte) (int, error) {
	if w.keep {
		w.tail = append(w.tail, p...)
		if len(w.tail) > 2*stderrTailBytes {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-stderrTailBytes:]...)
		}
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < maxLineBytes {
				break
			}
			i = maxLineBytes
			w.emit(w.buf[:i])
			w.buf = w.buf[i:]
			continue
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 && cap(w.buf) > 4*maxLineBytes {
		w.buf = nil
	}
	return len(p), nil
}

func (w *stepOutput) emit(line []byte) {
	if w.budget.take(len(line) + 1) {
		w.log.add(w.step, w.stream, string(line))
	}
}

// finish emits a last line without a newline.
func (w *stepOutput) finish() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

// stderrTail returns the end of the stream, redacted and sanitized.
func (w *stepOutput) stderrTail() string {
	t := w.tail
	if len(t) > stderrTailBytes {
		t = t[len(t)-stderrTailBytes:]
	}
	lines := strings.Split(strings.TrimRight(string(t), "\n"), "\n")
	for i := range lines {
		lines[i] = sanitize(lines[i])
	}
	return w.log.x.redact(strings.Join(lines, "\n"))
}
