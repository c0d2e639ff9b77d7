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
	// them along. The flush runs on the machine's time, not the run's
	// clock: it paces the store, and a virtual clock would never flush.
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

// add records one line of text for a step, clean.
func (l *runLog) add(step string, stream routine.Stream, text string) {
	text = l.clean(text)
	l.mu.Lock()
	l.seq++
	line := routine.LogLine{RunID: l.x.run.ID, TraceID: l.x.run.TraceID, Step: step, Seq: l.seq, Time: l.x.e.clock.Now().UTC(), Stream: stream, Text: text}
	l.x.cp.log(line)
	l.mu.Unlock()
	l.x.e.observer.Log(line)
}

// clean makes a line safe to keep: sanitized, secrets redacted.
func (l *runLog) clean(text string) string {
	return l.x.redact(sanitize(text))
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
	keep   bool     // whether to keep a tail
	tail   []string // the last lines as printed, for stderr_tail
	tailN  int      // bytes in tail
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
	w.buf = append(w.buf, p...)
	// A line longer than this is cut. The cut must not split a secret, so
	// the piece is redacted before it is cut, and the end that may begin a
	// secret the next write completes stays in the buffer.
	hold := max(0, w.log.x.redactor.MaxLen()-1)
	limit := max(maxLineBytes, 2*(hold+1))
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < limit {
				break
			}
			red := w.log.x.redact(string(w.buf))
			cut := max(1, len(red)-hold)
			w.emit([]byte(red[:cut]))
			w.buf = append(w.buf[:0], red[cut:]...)
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

// emit records a line within the step's budget, and keeps the stream's
// last lines when it keeps a tail, past the budget too. Tail lines are
// kept as printed and cleaned when the tail is read: a line past the
// budget costs no redaction.
func (w *stepOutput) emit(line []byte) {
	if w.budget.take(len(line) + 1) {
		w.log.add(w.step, w.stream, string(line))
	}
	if w.keep {
		text := string(line)
		w.tail = append(w.tail, text)
		w.tailN += len(text) + 1
		for len(w.tail) > 1 && w.tailN-len(w.tail[0])-1 >= stderrTailBytes {
			w.tailN -= len(w.tail[0]) + 1
			w.tail = w.tail[1:]
		}
	}
}

// finish emits a last line without a newline.
func (w *stepOutput) finish() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

// stderrTail returns the last lines of the stream, at most
// stderrTailBytes of them (the end of the first when it alone is longer),
// redacted and sanitized. Call it after finish.
func (w *stepOutput) stderrTail() string {
	clean := make([]string, len(w.tail))
	for i, line := range w.tail {
		clean[i] = w.log.clean(line)
	}
	t := strings.Join(clean, "\n")
	if len(t) > stderrTailBytes {
		// Whole lines were cleaned: cutting one reveals nothing.
		t = strings.ToValidUTF8(t[len(t)-stderrTailBytes:], "")
	}
	return t
}
