package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSync: a store's commits wait for the disk (synchronous=FULL on its
// writer, in WAL mode) unless its URL opts out with sync=normal; another
// value is refused with what to write.
func TestSync(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, tc := range []struct {
		query string
		want  int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{"", 2},
		{"?sync=full", 2},
		{"?sync=normal", 1},
	} {
		st, err := OpenURL(ctx, "sqlite:"+filepath.Join(dir, "state.db")+tc.query)
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		s := st.(*Store)
		var sync int
		var journal string
		if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
			t.Fatal(err)
		}
		if sync != tc.want || journal != "wal" {
			t.Errorf("%q: synchronous=%d journal_mode=%s, want %d and wal", tc.query, sync, journal, tc.want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for query, want := range map[string]string{
		"?sync=off":  "want sync=full",
		"?fsync=yes": "unknown parameter",
	} {
		_, err := OpenURL(ctx, "sqlite:"+filepath.Join(dir, "state.db")+query)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", query, err, want)
		}
	}
}
