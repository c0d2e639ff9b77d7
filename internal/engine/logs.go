package engine

import (
	"bytes"
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
	// before they are written to the store, when no step transition takes
	// them along.
	logFlushLines = 512
	logFlushEvery = 250 * time.Millisecond
)

// runLog numbers the log lines of one run, redacts secrets, shows them to
// the observer and queues them for the store.
type runLog struct {
	x   *runExec
	mu  sync.Mutex // orders seq with the queue
	seq int64
}

// add records one line of text for a step.
func (l *runLog) add(step string, stream routine.Stream, text string) {
	text = l.x.redact(sanitize(text))
	l.mu.Lock()
	l.seq++
	line := routine.LogLine{RunID: l.x.run.ID, Step: step, Seq: l.seq, Time: l.x.e.clock.Now().UTC(), Stream: stream, Text: text}
	l.x.cp.log(line)
	l.mu.Unlock()
	l.x.e.observer.Log(line)
}

// system records a line the engine writes about a step.
func (l *runLog) system(step, format string, args ...any) {
	l.add(step, routine.StreamSystem, fmt.Sprintf(format, args...))
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
