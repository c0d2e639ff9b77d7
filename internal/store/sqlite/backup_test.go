package sqlite_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// logRun records a run with n log lines and returns it.
func logRun(t testing.TB, b *testBundle, s store.Store, n int) *routine.Run {
	t.Helper()
	run := createRun(t, b.ctx, s, "r")
	lines := make([]routine.LogLine, n)
	for i := range lines {
		lines[i] = routine.LogLine{RunID: run.ID, Step: "s", Seq: int64(i + 1), Time: time.Now(), Stream: routine.StreamStdout, Text: fmt.Sprintf("line %d of %s", i, run.ID)}
	}
	if err := s.LogAppend(b.ctx, lines); err != nil {
		t.Fatalf("LogAppend: %v", err)
	}
	return run
}

// A backup taken while writers go on holds every run written before it
// started, with its logs, and its checksum file matches it.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	var before []*routine.Run
	for range 50 {
		before = append(before, logRun(t, b, s, 5))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var during atomic.Int64
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				logRun(t, b, s, 5)
				during.Add(1)
			}
		})
	}
	for during.Load() < 20 { // the writers are going
		time.Sleep(time.Millisecond)
	}
	dst := filepath.Join(t.TempDir(), "backup.db")
	info, err := sqlite.Backup(b.ctx, b.path, dst)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if info.Schema != sqlite.LatestSchema() || info.Runs < len(before) || info.RunsByState[string(routine.StateQueued)] != info.Runs {
		t.Fatalf("info %+v: want schema %d and at least %d queued runs", info, sqlite.LatestSchema(), len(before))
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != info.SHA256 || int64(len(data)) != info.Size {
		t.Fatalf("file sha256 %s size %d, info says %s %d", got, len(data), info.SHA256, info.Size)
	}
	side, err := os.ReadFile(dst + ".sha256")
	if want := info.SHA256 + "  backup.db\n"; err != nil || string(side) != want {
		t.Fatalf("checksum file %q (%v), want %q", side, err, want)
	}

	restored := filepath.Join(t.TempDir(), ".routines", "state.db")
	res, err := sqlite.Restore(b.ctx, dst, restored, time.Now())
	if err != nil || res.Aside != "" || res.Runs != info.Runs {
		t.Fatalf("Restore: %+v, %v", res, err)
	}
	r, err := sqlite.Open(b.ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, run := range before {
		lines, err := r.LogList(b.ctx, &store.LogListParams{RunID: run.ID})
		if err != nil || len(lines) != 5 || lines[4].Text != "line 4 of "+run.ID {
			t.Fatalf("run %s restored with logs %v (%v), want its 5 lines", run.ID, lines, err)
		}
	}
}

func TestBackupRefusesTheStoreItself(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	_, err := sqlite.Backup(b.ctx, b.path, b.path)
	if err == nil || !strings.Contains(err.Error(), "is the store itself") {
		t.Fatalf("Backup onto the store: %v", err)
	}
	if _, err := sqlite.Backup(b.ctx, filepath.Join(t.TempDir(), "none.db"), filepath.Join(t.TempDir(), "b.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Backup of a missing file: %v, want not exist", err)
	}
}

// backupOf writes a backup of a store holding one run and returns its
// path and the run.
func backupOf(t *testing.T) (string, *routine.Run, *testBundle) {
	t.Helper()
	s, b := setup(t)
	run := logRun(t, b, s, 3)
	dst := filepath.Join(t.TempDir(), "b.db")
	if _, err := sqlite.Backup(b.ctx, b.path, dst); err != nil {
		t.Fatal(err)
	}
	return dst, run, b
}

// rewriteChecksum makes the checksum file match the file as it is now.
func rewriteChecksum(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pageSize is SQLite's default, which the store keeps.
const pageSize = 4096

// flipPage damages the b-tree header of the file's page n (1-based): its
// type, first free block and cell count, as a torn or bit-rotted write
// would. Any damage in the content of a cell is not always found, even
// by integrity_check: text can change into other valid text.
func flipPage(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64((n - 1) * pageSize)
	if n == 1 {
		off += 100 // after the file header
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] ^= 0x5a
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}

// lastPage is the number of the file's last page, one of the runs or
// log lines written last.
func lastPage(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size() / pageSize)
}

func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"no checksum file", func(t *testing.T, path string) { _ = os.Remove(path + ".sha256") }, "no "},
		{"checksum mismatch", func(t *testing.T, path string) { flipPage(t, path, lastPage(t, path)) }, "checksum mismatch"},
		{"damaged before the backup", func(t *testing.T, path string) {
			flipPage(t, path, lastPage(t, path))
			rewriteChecksum(t, path)
		}, "integrity_check"},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
			rewriteChecksum(t, path)
		}, "is damaged though its checksum matches"},
		{"newer schema", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// user_version: the big-endian integer at offset 60 of the header.
			if _, err := f.WriteAt([]byte{0, 0, 0x03, 0xe7}, 60); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rewriteChecksum(t, path)
		}, "newer routines (schema 999 >"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, _, b := backupOf(t)
			tc.damage(t, src)
			before, err := os.ReadFile(b.path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = sqlite.Restore(b.ctx, src, b.path, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v, want an error containing %q", err, tc.want)
			}
			after, err := os.ReadFile(b.path)
			if err != nil || string(after) != string(before) {
				t.Fatalf("the store changed on a refused restore (%v)", err)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(b.path), ".*restore*"))
			if aside, _ := filepath.Glob(b.path + ".before-restore-*"); len(left)+len(aside) > 0 {
				t.Fatalf("a refused restore left %v %v", left, aside)
			}
		})
	}
}

// Restoring over a store moves it aside with its WAL, whose committed
// writes stay readable there.
func TestRestoreMovesTheStoreAside(t *testing.T) {
	t.Parallel()
	src, old, b := backupOf(t)
	// A second store on the file, left open: its last write is in the
	// WAL only (the first one checkpoints nothing while it is open).
	s := b.open(t)
	late := logRun(t, b, s, 1)
	if _, err := os.Stat(b.path + "-wal"); err != nil {
		t.Fatalf("want a WAL: %v", err)
	}
	// Restore is for a store no process has open: copy what a killed
	// daemon leaves behind, the file and its WAL, and restore over it.
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(b.path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+suffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)
	res, err := sqlite.Restore(b.ctx, src, path, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".before-restore-20261204T230000Z"; res.Aside != want {
		t.Fatalf("aside %q, want %q", res.Aside, want)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old WAL is still beside the restored store: %v", err)
	}
	restored, err := sqlite.Open(b.ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if _, err := restored.RunGet(b.ctx, late.ID); !errors.Is(err, routine.ErrNotFound) {
		t.Fatalf("the run written after the backup: %v, want not found", err)
	}
	if _, err := restored.RunGet(b.ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	aside, err := sqlite.Open(b.ctx, res.Aside)
	if err != nil {
		t.Fatal(err)
	}
	defer aside.Close()
	if _, err := aside.RunGet(b.ctx, late.ID); err != nil {
		t.Fatalf("the store set aside lost the write in its WAL: %v", err)
	}
}

// Damage in the header or the schema stops Open with a message that says
// what to do; damage deeper in is for Check, which finds both.
func TestCorruptStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		page     func(t *testing.T, path string) int
		openFail bool
	}{
		{"schema page", func(*testing.T, string) int { return 1 }, true},
		{"data page", lastPage, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, b := setup(t)
			for range 20 {
				logRun(t, b, s, 20)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			res, err := sqlite.Check(b.ctx, b.path, false)
			if err != nil || len(res.Problems) > 0 || res.Schema != res.Latest {
				t.Fatalf("Check before the damage: %+v, %v", res, err)
			}
			flipPage(t, b.path, tc.page(t, b.path))
			for _, quick := range []bool{false, true} {
				res, err := sqlite.Check(b.ctx, b.path, quick)
				if err != nil || len(res.Problems) == 0 {
					t.Fatalf("Check (quick %v) of a damaged file: %+v, %v", quick, res, err)
				}
			}
			_, err = sqlite.Open(b.ctx, b.path)
			var ce *sqlite.CorruptError
			if tc.openFail != errors.As(err, &ce) {
				t.Fatalf("Open: %v; want a CorruptError: %v", err, tc.openFail)
			}
			if tc.openFail && !strings.Contains(err.Error(), "routines doctor") {
				t.Fatalf("Open: %v, want it to say what to do", err)
			}
		})
	}
}

func TestNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), path)
	var ce *sqlite.CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "routines restore BACKUP") {
		t.Fatalf("Open: %v, want a CorruptError", err)
	}
	res, err := sqlite.Check(t.Context(), path, false)
	if err != nil || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "not a database") {
		t.Fatalf("Check: %+v, %v", res, err)
	}
}
