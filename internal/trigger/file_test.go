package trigger

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// testDebounce is short so the tests are quick, and long enough that
// writes made one after another in a test fall into one window.
const testDebounce = 50 * time.Millisecond

type fileBundle struct {
	inbox string // the watched directory, absolute
	fires chan Fire
}

type fileEvent struct{ Path, Op string }

// setupWatcher starts a Watcher of ft on dir/inbox; ft.Path defaults to
// ./inbox and ft.Debounce to testDebounce.
func setupWatcher(t *testing.T, ft routine.FileTrigger) (*Watcher, *fileBundle) {
	t.Helper()
	dir := t.TempDir()
	b := &fileBundle{inbox: filepath.Join(dir, "inbox"), fires: make(chan Fire, 100)}
	if err := os.Mkdir(b.inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	if ft.Path == "" {
		ft.Path = "./inbox"
	}
	if ft.Debounce == 0 {
		ft.Debounce = routine.Duration(testDebounce)
	}
	w := NewWatcher(WatcherConfig{
		Routine: "r", Trigger: 2, Dir: dir, File: ft,
		Sink: func(_ context.Context, f Fire) error {
			b.fires <- f
			return nil
		},
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, b
}

func (b *fileBundle) next(t *testing.T) fileEvent {
	t.Helper()
	select {
	case f := <-b.fires:
		if f.Routine != "r" || f.Trigger != 2 || f.Kind != "file" {
			t.Fatalf("fire %+v", f)
		}
		var e fileEvent
		if err := json.Unmarshal(f.Payload, &e); err != nil {
			t.Fatal(err)
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no fire within 5s")
		return fileEvent{}
	}
}

// until returns the firings up to and including the one for path. The
// Watcher fires in order of window deadlines, so a firing the test caused
// before touching path would come first.
func (b *fileBundle) until(t *testing.T, path string) []fileEvent {
	t.Helper()
	var got []fileEvent
	for {
		e := b.next(t)
		got = append(got, e)
		if e.Path == path {
			return got
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// sentinel touches a last file and returns the firings up to its own:
// everything the test did before has fired by then.
func (b *fileBundle) sentinel(t *testing.T, name string) []fileEvent {
	t.Helper()
	p := filepath.Join(b.inbox, name)
	write(t, p, "")
	got := b.until(t, p)
	return got[:len(got)-1]
}

func TestWatcherCreateFiresOnceAfterDebounce(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{})
	p := filepath.Join(b.inbox, "a.txt")
	begun := time.Now()
	write(t, p, "hello") // create, then write
	if e := b.next(t); e != (fileEvent{p, "create"}) {
		t.Fatalf("got %+v", e)
	}
	if waited := time.Since(begun); waited < testDebounce {
		t.Fatalf("fired after %s, before the %s window closed", waited, testDebounce)
	}
	if extra := b.sentinel(t, "zz"); len(extra) != 0 {
		t.Fatalf("more firings: %+v", extra)
	}
}

func TestWatcherRapidWritesCoalesce(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{})
	p := filepath.Join(b.inbox, "log.txt")
	write(t, p, "")
	b.next(t)
	for range 20 {
		appendTo(t, p, "line\n")
	}
	if e := b.next(t); e != (fileEvent{p, "write"}) {
		t.Fatalf("got %+v", e)
	}
	if extra := b.sentinel(t, "zz"); len(extra) != 0 {
		t.Fatalf("writes not coalesced: %+v", extra)
	}
}

func TestWatcherGlob(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{Glob: "*.png"})
	write(t, filepath.Join(b.inbox, "notes.txt"), "x")
	write(t, filepath.Join(b.inbox, "cat.png"), "x")
	got := b.sentinel(t, "zz.png")
	want := []fileEvent{{filepath.Join(b.inbox, "cat.png"), "create"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestWatcherRecursive(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{Recursive: true, Glob: "*.csv"})
	// A directory made after Start, and one made inside it at once, so its
	// file may exist before the watch does.
	deep := filepath.Join(b.inbox, "2026", "05")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(deep, "sales.csv")
	write(t, p, "a,b\n")
	if got := b.until(t, p); got[len(got)-1].Op != "create" {
		t.Fatalf("got %+v", got)
	}
	// The new directory is watched from now on.
	appendTo(t, p, "c,d\n")
	if e := b.next(t); e != (fileEvent{p, "write"}) {
		t.Fatalf("got %+v", e)
	}
}

func TestWatcherNotRecursive(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{})
	sub := filepath.Join(b.inbox, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "a.txt"), "x")
	got := b.sentinel(t, "zz")
	if len(got) != 1 || got[0] != (fileEvent{sub, "create"}) {
		t.Fatalf("got %+v, want only the directory's creation", got)
	}
}

func TestWatcherRemoveRename(t *testing.T) {
	t.Parallel()
	_, b := setupWatcher(t, routine.FileTrigger{On: []string{"remove", "rename"}})
	a, c := filepath.Join(b.inbox, "a.txt"), filepath.Join(b.inbox, "c.txt")
	write(t, a, "x") // create and write are not selected
	write(t, c, "x")
	if err := os.Rename(a, filepath.Join(b.inbox, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c); err != nil {
		t.Fatal(err)
	}
	if e := b.next(t); e != (fileEvent{a, "rename"}) {
		t.Fatalf("got %+v", e)
	}
	if e := b.next(t); e != (fileEvent{c, "remove"}) {
		t.Fatalf("got %+v", e)
	}
	select {
	case f := <-b.fires:
		t.Fatalf("unexpected %s", f.Payload)
	default:
	}
}

// A file path watches its directory and fires for that file only.
func TestWatcherFilePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "config.yaml")
	write(t, target, "a: 1\n")
	fires := make(chan Fire, 10)
	w := NewWatcher(WatcherConfig{Routine: "r", Dir: dir, File: routine.FileTrigger{Path: "config.yaml", Debounce: routine.Duration(testDebounce)},
		Sink: func(_ context.Context, f Fire) error { fires <- f; return nil }})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	write(t, filepath.Join(dir, "other.yaml"), "b: 2\n")
	appendTo(t, target, "c: 3\n")
	select {
	case f := <-fires:
		if want := `{"path":"` + target + `","op":"write"}`; string(f.Payload) != want {
			t.Fatalf("got %s, want %s", f.Payload, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fire")
	}
}

func TestWatcherStop(t *testing.T) {
	t.Parallel()
	w, b := setupWatcher(t, routine.FileTrigger{})
	write(t, filepath.Join(b.inbox, "pending.txt"), "x") // window may be open
	w.Stop()
	w.Stop() // idempotent
	select {
	case <-w.done:
	default:
		t.Fatal("loop still running after Stop")
	}
	if n := len(w.fsw.WatchList()); n != 0 {
		t.Fatalf("fsnotify watcher still holds %d watches", n)
	}
	if err := w.Start(context.Background()); err == nil {
		t.Fatal("started twice")
	}
}

func TestWatcherMissingPath(t *testing.T) {
	t.Parallel()
	w := NewWatcher(WatcherConfig{Routine: "r", Dir: t.TempDir(), File: routine.FileTrigger{Path: "nope"}, Sink: func(context.Context, Fire) error { return nil }})
	if err := w.Start(context.Background()); err == nil {
		w.Stop()
		t.Fatal("watching a missing path")
	}
}
