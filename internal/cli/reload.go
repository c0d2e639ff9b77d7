package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/routines-dev/routines/internal/project"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/trigger"
)

// reloadDebounce is how long the reloader waits after the last change of
// a routine file before it loads the files again: editors write a file in
// several steps (truncate, write, rename).
const reloadDebounce = 100 * time.Millisecond

// reloader keeps the daemon's routines in step with their files: it
// watches every directory under the project (editors replace files by
// renaming, so it watches directories and matches names), and after a
// change loads the routine files again. A valid file replaces the routine
// for new runs (runs in flight keep the revision they started with) along
// with its cron, every, file, email and webhook triggers; an invalid one is
// reported with its positions and the previous revision stays; a new file
// adds a routine, a removed one stops its triggers.
type reloader struct {
	root    string
	catalog *scheduler.Catalog
	clock   *trigger.Scheduler
	sink    trigger.Sink
	logger  *slog.Logger
	warn    io.Writer
	// check vets a routine before it is taken (the sandbox); nil: none.
	check func(*routine.Routine) error
	// mail starts the email triggers of a routine; nil: none.
	mail func(context.Context, *routine.Routine) []stopper

	mu       sync.Mutex
	ctx      context.Context
	files    map[string]string    // routine name → its file
	reported map[string]string    // file → the revision of the invalid content last reported
	watchers map[string][]stopper // file and email triggers, by routine
	fsw      *fsnotify.Watcher
	done     chan struct{}
}

func newReloader(root string, rs []*routine.Routine, catalog *scheduler.Catalog, clock *trigger.Scheduler, sink trigger.Sink, logger *slog.Logger, warn io.Writer) *reloader {
	rl := &reloader{
		root: root, catalog: catalog, clock: clock, sink: sink, logger: logger, warn: warn,
		files: map[string]string{}, reported: map[string]string{}, watchers: map[string][]stopper{},
	}
	for _, r := range rs {
		rl.files[r.Name] = r.File
	}
	return rl
}

// start starts the file and email triggers of the routines and, when watch is set,
// the watch on the routine files.
func (rl *reloader) start(ctx context.Context, rs []*routine.Routine, watch bool) error {
	rl.mu.Lock()
	rl.ctx = ctx
	for _, r := range rs {
		rl.watchers[r.Name] = rl.startTriggers(ctx, r)
	}
	rl.mu.Unlock()
	if !watch {
		return nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch routine files: %w", err)
	}
	rl.fsw = fsw
	rl.addDirs(rl.root)
	rl.done = make(chan struct{})
	go rl.loop(ctx)
	return nil
}

// stop stops the watch and every file and email trigger.
func (rl *reloader) stop() {
	if rl.fsw != nil {
		rl.fsw.Close()
		<-rl.done
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	for name, ws := range rl.watchers {
		for _, w := range ws {
			w.Stop()
		}
		delete(rl.watchers, name)
	}
}

// addDirs watches dir and the directories under it that discover visits.
func (rl *reloader) addDirs(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path != rl.root && project.SkippedDir(d.Name()) {
			return filepath.SkipDir
		}
		if err := rl.fsw.Add(path); err != nil {
			rl.logger.Warn("watch routine directory", "dir", path, "err", err)
		}
		return nil
	})
}

func (rl *reloader) loop(ctx context.Context) {
	defer close(rl.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-rl.fsw.Events:
			if !ok {
				return
			}
			base := filepath.Base(ev.Name)
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() && !project.SkippedDir(base) {
					rl.addDirs(ev.Name)
					timer.Reset(reloadDebounce) // it may hold routine files already
					continue
				}
			}
			if project.IsRoutineFile(base) || (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) && !project.SkippedDir(base) {
				timer.Reset(reloadDebounce)
			}
		case err, ok := <-rl.fsw.Errors:
			if !ok {
				return
			}
			rl.logger.Warn("watch routine files", "err", err)
		case <-timer.C:
			rl.reload()
		}
	}
}

// reload loads every routine file under the root and applies what changed.
func (rl *reloader) reload() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.ctx.Err() != nil {
		return
	}
	found := map[string]*routine.Routine{} // by name, of valid files
	present := map[string]bool{}           // files that exist
	project.Walk(rl.root, project.WalkOptions{OwnProject: true}, func(path string) error {
		present[path] = true
		r, err := spec.Load(path)
		if err == nil && rl.check != nil {
			if cerr := rl.check(r); cerr != nil {
				err = fmt.Errorf("%s: %w", path, cerr)
			}
		}
		if err != nil {
			key := fileStamp(path)
			if rl.reported[path] != key {
				rl.reported[path] = key
				keep := ""
				for name, f := range rl.files {
					if f == path {
						keep = fmt.Sprintf("; routine %s keeps its previous revision", name)
					}
				}
				fmt.Fprintf(rl.warn, "%v\nreload %s: it is invalid%s\n", err, path, keep)
			}
			return nil
		}
		delete(rl.reported, path)
		if other, ok := found[r.Name]; ok {
			fmt.Fprintf(rl.warn, "reload: routine %q is defined twice: %s and %s; %s is ignored\n", r.Name, other.File, path, path)
			return nil
		}
		found[r.Name] = r
		return nil
	})

	// Routines whose file is gone stop; a routine whose file is invalid now
	// keeps its previous revision.
	for name, file := range rl.files {
		if _, ok := found[name]; ok {
			continue
		}
		if present[file] {
			continue // invalid now, or renamed inside: keep it
		}
		rl.remove(name)
		fmt.Fprintf(rl.warn, "reload: %s removed (%s is gone); its triggers are stopped\n", name, file)
		rl.logger.Info("routine removed", "routine", name, "file", file)
	}
	for name, r := range found {
		if prev, ok := rl.catalog.Get(name); ok && prev.Revision == r.Revision && prev.File == r.File {
			continue
		}
		if f, ok := rl.files[name]; ok && f != r.File && present[f] {
			fmt.Fprintf(rl.warn, "reload: routine %q is defined twice: %s and %s; %s is ignored\n", name, f, r.File, r.File)
			continue
		}
		if err := rl.hookClash(r); err != nil {
			fmt.Fprintf(rl.warn, "reload %s: %v; the previous revision stays\n", r.File, err)
			continue
		}
		if err := rl.clock.Set(name, r.Triggers); err != nil {
			fmt.Fprintf(rl.warn, "reload %s: %v; the previous revision stays\n", r.File, err)
			continue
		}
		_, existed := rl.files[name]
		rl.catalog.Set(r)
		rl.files[name] = r.File
		for _, w := range rl.watchers[name] {
			w.Stop()
		}
		rl.watchers[name] = rl.startTriggers(rl.ctx, r)
		verb := "reloaded"
		if !existed {
			verb = "added"
		}
		fmt.Fprintf(rl.warn, "reload: %s %s from %s (revision %s)\n", name, verb, r.File, shortRev(r.Revision))
		rl.logger.Info("routine "+verb, "routine", name, "revision", r.Revision)
	}
}

// hookClash reports a webhook path of r that another routine uses.
func (rl *reloader) hookClash(r *routine.Routine) error {
	for _, o := range rl.catalog.All() {
		if o.Name == r.Name {
			continue
		}
		if err := checkHooks([]*routine.Routine{o, r}); err != nil {
			return err
		}
	}
	return nil
}

func (rl *reloader) remove(name string) {
	rl.clock.Set(name, nil)
	for _, w := range rl.watchers[name] {
		w.Stop()
	}
	delete(rl.watchers, name)
	delete(rl.files, name)
	rl.catalog.Remove(name)
}

// fileStamp identifies the content of a file well enough not to report
// the same invalid content twice.
func fileStamp(path string) string {
	info, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", info.Size(), info.ModTime().UnixNano())
}

// reservedSum adds up the concurrency.reserved of routines.
func reservedSum(rs []*routine.Routine) int {
	n := 0
	for _, r := range rs {
		if r.Concurrency != nil {
			n += r.Concurrency.Reserved
		}
	}
	return n
}
