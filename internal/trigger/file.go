package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/routines-dev/routines/internal/clock"
	"github.com/routines-dev/routines/internal/repeat"
	"github.com/routines-dev/routines/internal/routine"
)

// defaultDebounce is the window of a file trigger without debounce:.
const defaultDebounce = 100 * time.Millisecond

// WatcherConfig is one file: trigger of a routine and what its Watcher
// needs from the daemon.
type WatcherConfig struct {
	Routine string
	// Trigger is the index of the trigger in the routine's triggers:.
	Trigger int
	// Dir is the routine directory; a relative file.path is under it.
	Dir  string
	File routine.FileTrigger
	// Sink receives one firing per path and debounce window.
	Sink   Sink
	Logger *slog.Logger
	// Clock times the debounce windows; nil means clock.Real.
	Clock clock.Clock
}

// Watcher fires a file: trigger on fsnotify events. Events of one path
// within the debounce window (restarted by each event) fold into one
// firing, whose op is the first selected op of the window. Each Watcher
// holds one inotify instance.
type Watcher struct {
	cfg      WatcherConfig
	clock    clock.Clock
	log      *slog.Logger
	root     string // absolute path watched
	only     string // when file.path is a file: its absolute path, else ""
	on       []string
	debounce time.Duration

	// refused keeps events the queue refuses again and again to one
	// warning, then one at backoff.
	refused *repeat.Limiter

	fsw    *fsnotify.Watcher
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// pending is a path whose debounce window is open.
type pending struct {
	op       string
	deadline time.Time
}

// NewWatcher returns a Watcher for cfg; Start begins watching.
func NewWatcher(cfg WatcherConfig) *Watcher {
	w := &Watcher{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, on: cfg.File.On, debounce: cfg.File.Debounce.D()}
	if w.clock == nil {
		w.clock = clock.Real{}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.refused = repeat.New(w.clock.Now)
	if len(w.on) == 0 {
		w.on = []string{"create", "write"}
	}
	if w.debounce <= 0 {
		w.debounce = defaultDebounce
	}
	w.root = cfg.File.Path
	if !filepath.IsAbs(w.root) {
		w.root = filepath.Join(cfg.Dir, w.root)
	}
	w.root = filepath.Clean(w.root)
	return w
}

// Start watches file.path (and with recursive: every directory under it,
// including those created later) and fires until ctx ends or Stop. The
// path must exist: a directory, or a file, whose parent is then watched.
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return errors.New("watcher already started")
	}
	info, err := os.Stat(w.root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.root, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.root, err)
	}
	switch {
	case !info.IsDir():
		w.only = w.root
		err = fsw.Add(filepath.Dir(w.root))
	case w.cfg.File.Recursive:
		err = w.addTree(fsw, w.root, nil)
	default:
		err = fsw.Add(w.root)
	}
	if err != nil {
		fsw.Close()
		return fmt.Errorf("watch %s: %w", w.root, err)
	}
	w.fsw = fsw
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go w.run(ctx)
	return nil
}

// Stop closes the watcher and returns once it has: nothing fires after
// Stop, and windows still open are dropped.
func (w *Watcher) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// addTree watches dir and the directories under it. found, when not nil,
// receives the entries under dir other than dir itself: a directory made
// while the daemon runs may hold files before its watch is in place.
func (w *Watcher) addTree(fsw *fsnotify.Watcher, dir string, found func(path string)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while walking
			}
			return err
		}
		if found != nil && p != dir {
			found(p)
		}
		if d.IsDir() {
			return fsw.Add(p)
		}
		return nil
	})
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer w.fsw.Close()
	open := map[string]pending{}
	for {
		var timer clock.Timer
		var fired <-chan time.Time
		if len(open) > 0 {
			var earliest time.Time
			for _, p := range open {
				if earliest.IsZero() || p.deadline.Before(earliest) {
					earliest = p.deadline
				}
			}
			timer = w.clock.NewTimer(earliest.Sub(w.clock.Now()))
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
		case ev, ok := <-w.fsw.Events:
			if ok {
				w.event(ev, open)
			}
		case err, ok := <-w.fsw.Errors:
			if ok {
				w.log.WarnContext(ctx, "file watch error", "routine", w.cfg.Routine, "path", w.root, "err", err)
			}
		case <-fired:
			w.flush(ctx, open)
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// event opens or extends the window of the event's path when its op is
// selected and its base name matches the glob, and watches directories
// made under a recursive root.
func (w *Watcher) event(ev fsnotify.Event, open map[string]pending) {
	if w.only != "" && ev.Name != w.only {
		return
	}
	if w.cfg.File.Recursive && ev.Has(fsnotify.Create) {
		if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() {
			err := w.addTree(w.fsw, ev.Name, func(p string) { w.note(p, "create", open) })
			if err != nil {
				w.log.Warn("watch new directory", "routine", w.cfg.Routine, "path", ev.Name, "err", err)
			}
		}
	}
	for _, op := range []struct {
		bit  fsnotify.Op
		name string
	}{{fsnotify.Create, "create"}, {fsnotify.Write, "write"}, {fsnotify.Remove, "remove"}, {fsnotify.Rename, "rename"}} {
		if ev.Has(op.bit) {
			w.note(ev.Name, op.name, open)
		}
	}
}

// note records op on path if the trigger selects it.
func (w *Watcher) note(path, op string, open map[string]pending) {
	if !slices.Contains(w.on, op) {
		return
	}
	if g := w.cfg.File.Glob; g != "" {
		if ok, _ := filepath.Match(g, filepath.Base(path)); !ok {
			return
		}
	}
	p, ok := open[path]
	if !ok {
		p.op = op
	}
	p.deadline = w.clock.Now().Add(w.debounce)
	open[path] = p
}

// flush fires the paths whose window has closed, earliest first.
func (w *Watcher) flush(ctx context.Context, open map[string]pending) {
	now := w.clock.Now()
	var due []string
	for path, p := range open {
		if !p.deadline.After(now) {
			due = append(due, path)
		}
	}
	slices.SortFunc(due, func(a, b string) int {
		if c := open[a].deadline.Compare(open[b].deadline); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, path := range due {
		op := open[path].op
		delete(open, path)
		payload, err := json.Marshal(struct {
			Path string `json:"path"`
			Op   string `json:"op"`
		}{path, op})
		if err != nil {
			panic(err) // two strings always marshal
		}
		f := Fire{Routine: w.cfg.Routine, Trigger: w.cfg.Trigger, Kind: "file", Payload: payload, At: now}
		if err := w.cfg.Sink(ctx, f); err != nil {
			w.refused.Log(w.log, sinkLevel(err, slog.LevelWarn), "sink", "file event not accepted: "+err.Error(), "routine", w.cfg.Routine, "trigger", w.cfg.Trigger, "path", path, "op", op)
			continue
		}
		w.refused.Recovered(w.log, "sink", "file events accepted again", "routine", w.cfg.Routine, "trigger", w.cfg.Trigger)
	}
}
