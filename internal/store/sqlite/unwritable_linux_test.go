package sqlite_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/disktest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// A store on a disk that fills up refuses writes with an error that says
// so and where, keeps what it had, and writes again once space returns.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	disk := filepath.Join(t.TempDir(), "disk")
	disktest.Mount(t, disk, 2<<20)
	path := filepath.Join(disk, "state.db")
	b := &testBundle{ctx: t.Context(), path: path}
	s := b.open(t)
	ctx := b.ctx
	before := createRun(t, ctx, s, "r")
	if _, err := s.Writability().Outage(); err != nil {
		t.Fatalf("a fresh store is in an outage: %v", err)
	}

	free := disktest.Fill(t, disk)
	// A write of a few pages: the write-ahead log may have room for a
	// small one, but not for ever.
	big := map[string]string{"x": strings.Repeat("y", 64<<10)}
	var err error
	for range 100 {
		if _, err = s.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "r", QueuedAt: time.Now(), Input: big}); err != nil {
			break
		}
	}
	var unwritable *store.UnwritableError
	if !errors.As(err, &unwritable) || !errors.Is(err, store.ErrUnwritable) {
		t.Fatalf("RunCreate on a full disk: %v, want a store.UnwritableError", err)
	}
	if unwritable.Cause != "disk full" || unwritable.Path != path {
		t.Errorf("refusal: cause %q at %q, want disk full at %s", unwritable.Cause, unwritable.Path, path)
	}
	if want := "the store cannot write: disk full at " + path; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	since, outage := s.Writability().Outage()
	if !errors.Is(outage, store.ErrUnwritable) || since.IsZero() {
		t.Fatalf("outage after a refused write: %v since %v", outage, since)
	}
	if err := s.ProbeWrite(ctx); !errors.Is(err, store.ErrUnwritable) {
		t.Fatalf("ProbeWrite on a full disk: %v, want ErrUnwritable", err)
	}
	// Reads go on.
	if got, err := s.RunGet(ctx, before.ID); err != nil || got.State != routine.StateQueued {
		t.Fatalf("RunGet on a full disk: %v, %v", got, err)
	}

	free()
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatalf("ProbeWrite once space returned: %v", err)
	}
	if _, err := s.Writability().Outage(); err != nil {
		t.Fatalf("outage not over after a probe went through: %v", err)
	}
	after := createRun(t, ctx, s, "r")
	for _, id := range []string{before.ID, after.ID} {
		if _, err := s.RunGet(ctx, id); err != nil {
			t.Errorf("RunGet %s: %v", id, err)
		}
	}
	var check string
	if err := b.raw(t).QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
}

// The errors of other causes are left as they are.
func TestNotUnwritable(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	run := createRun(t, b.ctx, s, "r")
	_, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: run.ID, Routine: "r", QueuedAt: time.Now()})
	if !errors.Is(err, routine.ErrConflict) || errors.Is(err, store.ErrUnwritable) {
		t.Fatalf("a taken id: %v, want ErrConflict only", err)
	}
	if _, err := s.Writability().Outage(); err != nil {
		t.Fatalf("a conflict began an outage: %v", err)
	}
}
