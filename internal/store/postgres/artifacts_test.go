package postgres_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/artifacts/artifactstest"
	"github.com/routines-dev/routines/internal/store/postgres"
)

func TestArtifactsConformance(t *testing.T) {
	t.Parallel()
	artifactstest.Exercise(t, func(t *testing.T) *artifactstest.Harness {
		s, b := setup(t)
		return &artifactstest.Harness{Store: s.Artifacts(), Corrupt: func(t *testing.T, run, step, name string) {
			// One byte flipped in the middle, size and checksum kept.
			tag, err := b.raw(t).Exec(b.ctx, `UPDATE artifacts SET data = overlay(data PLACING '\xff'::bytea FROM octet_length(data)/2 + 1 FOR 1)
				WHERE run_id = $1 AND step = $2 AND name = $3`, run, step, name)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("corrupt %s/%s: %v (%d rows)", step, name, err, tag.RowsAffected())
			}
		}}
	})
}

// TestArtifactsSizeCap: an artifact of up to MaxArtifactBytes is kept;
// a larger one is refused before it is read, saying to use a bucket.
func TestArtifactsSizeCap(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	a := s.Artifacts()
	const run = "01RUNAAAAAAAAAAAAAAAAAAAAA"
	full := bytes.Repeat([]byte{7}, postgres.MaxArtifactBytes)
	if _, err := a.Put(t.Context(), run, "s", "full", bytes.NewReader(full), int64(len(full))); err != nil {
		t.Fatalf("Put of exactly the cap: %v", err)
	}
	over := bytes.NewReader(append(full, 7))
	_, err := a.Put(t.Context(), run, "s", "over", over, int64(over.Len()))
	if !errors.Is(err, artifacts.ErrTooLarge) || !strings.Contains(err.Error(), "8 MiB") || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("Put over the cap: %v; want ErrTooLarge naming the cap and s3", err)
	}
	if over.Len() != len(full)+1 {
		t.Errorf("the refused artifact was read (%d bytes left)", over.Len())
	}
	infos, err := a.List(t.Context(), run)
	if err != nil || len(infos) != 1 || infos[0].Name != "full" || infos[0].Size != int64(len(full)) {
		t.Fatalf("List: %+v, %v; want the full one alone", infos, err)
	}
}
