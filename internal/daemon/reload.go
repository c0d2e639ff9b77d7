package daemon

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
)

// reloadDebounce is how long the reloader waits after the last change of
// a routine file before it loads the files again: editors write a file in
// several steps (truncate, write, rename).
const reloadDebounce = 100 * time.Millisecond

// ReloaderConfig is what a Reloader is built from.
type ReloaderConfig struct {
	// Root is the directory whose routine files are served.
	Root     string
	Catalog  *scheduler.Catalog
	Triggers *Triggers
	// Check vets a routine before it is taken (secrets, calls, the
	// sandbox); nil: none. It finds the routines r calls with get.
	Check  Check
	Logger *slog.Logger
	// Warn tells the operator what was reloaded and what is invalid.
	Warn io.Writer
	// Watch, when false, starts the triggers of the routines and watches
	// no file (serve --no-reload).
	Watch bool
}

// Reloader is the service that keeps the daemon's routines in step with
// their files: it watches every directory under the root (editors
// replace files by renaming, so it watches directories and matches
// names), and after a change loads the routine files again. A valid file
// replaces the routine for new runs (runs in flight keep the revision
// they started with) along with its triggers; an invalid one is reported
// with its positions and the previous revision stays; a new file adds a
// routine, a removed one stops its triggers. It starts the triggers of
// the routines in the catalog when it starts.
type Reloader struct {
	cfg ReloaderConfig

	mu       sync.Mutex
	ctx      context.Context
	files    map[string]string // routine name → its file
	reported map[string]string // file → the stamp of the invalid content last reported
	fsw      *fsnotify.Watcher
	done     chan struct{}
}

// NewReloader returns a reloader of the routines in cfg.Catalog.
func NewReloader(cfg ReloaderConfig) *Reloader {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Warn == nil {
		cfg.Warn = io.Discard
	}
	rl := &Reloader{cfg: cfg, files: map[string]string{}, reported: map[string]string{}}
	for _, r := range cfg.Catalog.All() {
		rl.files[r.Name] = r.File
	}
	return rl
}

// Start starts the triggers of the routines and, when cfg.Watch is set,
// the watch on the routine files. The triggers and the watch run until
// Stop or until ctx ends.
func (rl *Reloader) Start(ctx context.Context) error {
	rl.mu.Lock()
	rl.ctx = ctx
	for _, r := range rl.cfg.Catalog.All() {
		if err := rl.cfg.Triggers.Set(ctx, r, nil); err != nil {
			rl.mu.Unlock()
			return err
		}
	}
	rl.mu.Unlock()
	if !rl.cfg.Watch {
		return nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch routine files: %w", err)
	}
	rl.fsw = fsw
	rl.addDirs(rl.cfg.Root)
	rl.done = make(chan struct{})
	go rl.loop(ctx)
	return nil
}

// Stop stops the watch; the triggers are the Triggers service's to stop.
func (rl *Reloader) Stop(context.Context) error {
	if rl.fsw != nil {
		rl.fsw.Close()
		<-rl.done
	}
	return nil
}

// addDirs watches dir and the directories under it that Discover visits.
func (rl *Reloader) addDirs(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path != rl.cfg.Root && project.SkippedDir(d.Name()) {
			return filepath.SkipDir
		}
		if err := rl.fsw.Add(path); err != nil {
			rl.cfg.Logger.Warn("watch routine directory", "dir", path, "err", err)
		}
		return nil
	})
}

func (rl *Reloader) loop(ctx context.Context) {
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
			rl.cfg.Logger.Warn("watch routine files", "err", err)
		case <-timer.C:
			rl.reload()
		}
	}
}

// reload loads every routine file under the root and applies what changed.
func (rl *Reloader) reload() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.ctx.Err() != nil {
		return
	}
	warn := rl.cfg.Warn
	found := map[string]*routine.Routine{} // by name, of valid files
	present := map[string]bool{}           // files that exist
	project.Walk(rl.cfg.Root, project.WalkOptions{OwnProject: true}, func(path string) error {
		present[path] = true
		r, err := spec.Load(path)
		if err == nil && rl.cfg.Check != nil {
			if cerr := rl.cfg.Check(r, callees(r, rl.cfg.Catalog)); cerr != nil {
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
				fmt.Fprintf(warn, "%v\nreload %s: it is invalid%s\n", err, path, keep)
			}
			return nil
		}
		delete(rl.reported, path)
		if other, ok := found[r.Name]; ok {
			fmt.Fprintf(warn, "reload: routine %q is defined twice: %s and %s; %s is ignored\n", r.Name, other.File, path, path)
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
		fmt.Fprintf(warn, "reload: %s removed (%s is gone); its triggers are stopped\n", name, file)
		rl.cfg.Logger.Info("routine removed", "routine", name, "file", file)
	}
	for name, r := range found {
		prev, existed := rl.cfg.Catalog.Get(name)
		if existed && prev.Revision == r.Revision && prev.File == r.File {
			continue
		}
		if f, ok := rl.files[name]; ok && f != r.File && present[f] {
			fmt.Fprintf(warn, "reload: routine %q is defined twice: %s and %s; %s is ignored\n", name, f, r.File, r.File)
			continue
		}
		if err := rl.hookClash(r); err != nil {
			fmt.Fprintf(warn, "reload %s: %v; the previous revision stays\n", r.File, err)
			continue
		}
		if !existed {
			prev = nil
		}
		if err := rl.cfg.Triggers.Set(rl.ctx, r, prev); err != nil {
			fmt.Fprintf(warn, "reload %s: %v; the previous revision stays\n", r.File, err)
			continue
		}
		rl.cfg.Catalog.Set(r)
		rl.files[name] = r.File
		verb := "reloaded"
		if !existed {
			verb = "added"
		}
		fmt.Fprintf(warn, "reload: %s %s from %s (revision %s)\n", name, verb, r.File, routine.ShortRevision(r.Revision))
		rl.cfg.Logger.Info("routine "+verb, "routine", name, "revision", r.Revision)
	}
}

// Check vets a routine file a daemon loads; get finds the routines it
// calls by name.
type Check func(r *routine.Routine, get func(name string) (*routine.Routine, bool)) error

// callees finds the routines r calls: r itself by its name (a new
// revision may call itself), else those of the catalog.
func callees(r *routine.Routine, catalog *scheduler.Catalog) func(string) (*routine.Routine, bool) {
	return func(name string) (*routine.Routine, bool) {
		if name == r.Name {
			return r, true
		}
		return catalog.Get(name)
	}
}

// hookClash reports a webhook path or Slack command of r that another
// routine uses.
func (rl *Reloader) hookClash(r *routine.Routine) error {
	for _, o := range rl.cfg.Catalog.All() {
		if o.Name == r.Name {
			continue
		}
		if err := CheckHooks([]*routine.Routine{o, r}); err != nil {
			return err
		}
	}
	return nil
}

func (rl *Reloader) remove(name string) {
	rl.cfg.Triggers.Remove(name)
	delete(rl.files, name)
	rl.cfg.Catalog.Remove(name)
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

// CheckHooks refuses two routines with a webhook at the same path, or
// with a slack_command trigger of the same command: a request must reach
// one routine.
func CheckHooks(rs []*routine.Routine) error {
	seen := map[string]string{}
	commands := map[string]string{}
	for _, r := range rs {
		for _, t := range r.Triggers {
			if c := t.SlackCommand; c != nil {
				if prev, ok := commands[c.Command]; ok && prev != r.Name {
					return fmt.Errorf("slack command %s is handled by both %s and %s", c.Command, prev, r.Name)
				}
				commands[c.Command] = r.Name
			}
			if t.Webhook == nil {
				continue
			}
			if prev, ok := seen[t.Webhook.Path]; ok && prev != r.Name {
				return fmt.Errorf("webhook path %s is used by both %s and %s", t.Webhook.Path, prev, r.Name)
			}
			seen[t.Webhook.Path] = r.Name
		}
	}
	return nil
}
