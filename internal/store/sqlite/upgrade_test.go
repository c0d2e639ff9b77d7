package sqlite_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// The fixtures' master key and secret (testdata/upgrade/generate.sh).
const (
	fixtureKey   = "AGE-SECRET-KEY-1054T0SUYLVKLYFNDYL8WZP5DV4PF3P5DCW369SPA3FYMM4DTDSJSJXARWX"
	fixtureToken = "fixture-token-value-7f3a"
)

// TestUpgradeFixtures opens a store written by the binary of every
// earlier schema version (testdata/upgrade/vN.db.gz) with this one: each
// is backed up, migrated to the newest schema, and keeps its runs, steps,
// logs, state, secrets and audit. A new migration makes the fixture of
// the version before it due: generate.sh writes it.
func TestUpgradeFixtures(t *testing.T) {
	t.Parallel()
	latest := sqlite.LatestSchema()
	for v := 1; v <= latest; v++ {
		if _, err := os.Stat(fixturePath(v)); err != nil {
			// The newest version's fixture can wait for the next
			// migration: it is tested as an upgrade only then.
			if v < latest {
				t.Errorf("no fixture of schema %d (%v): run internal/store/sqlite/testdata/upgrade/generate.sh and commit what it writes", v, err)
			}
			continue
		}
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			t.Parallel()
			checkFixture(t, v, latest)
		})
	}
}

func fixturePath(v int) string {
	return filepath.Join("testdata", "upgrade", fmt.Sprintf("v%d.db.gz", v))
}

func checkFixture(t *testing.T, v, latest int) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), ".routines", "state.db")
	unzip(t, fixturePath(v), path)
	if res, err := sqlite.Check(ctx, path, false); err != nil || res.Schema != v || len(res.Problems) > 0 {
		t.Fatalf("the fixture: %+v, %v; want a sound store of schema %d", res, err, v)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()

	backups, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "backups", fmt.Sprintf("state-v%d-*.db", v)))
	if want := min(1, latest-v); len(backups) != want {
		t.Fatalf("backups before migrating: %v, want %d", backups, want)
	}
	if len(backups) == 1 {
		if res, err := sqlite.Check(ctx, backups[0], false); err != nil || res.Schema != v || len(res.Problems) > 0 {
			t.Fatalf("the backup before migrating: %+v, %v", res, err)
		}
	}
	if res, err := sqlite.Check(ctx, path, false); err != nil || res.Schema != latest || len(res.Problems) > 0 {
		t.Fatalf("after the migration: %+v, %v", res, err)
	}

	runs, err := st.RunList(ctx, &store.RunListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, fmt.Sprintf("%s %s %v", r.Routine, r.State, r.Input))
	}
	slices.Sort(got)
	want := []string{"broken failed map[]", "fixture succeeded map[who:ada]", "fixture succeeded map[who:grace]"}
	if !slices.Equal(got, want) {
		t.Fatalf("runs %q, want %q", got, want)
	}
	// The rollups count them, whichever width a range reads: a range of
	// whole days reads the days, which 0016 summed from the hours.
	day := 24 * time.Hour
	since := runs[len(runs)-1].QueuedAt.Truncate(day)
	stats, err := st.Stats(ctx, &store.StatsParams{Since: since, Until: since.Add(2 * day), Step: day})
	if err != nil {
		t.Fatal(err)
	}
	ended := map[string]int64{}
	for _, s := range stats {
		if s.Step != day {
			t.Errorf("stats of %s in steps of %v, want days", s.Routine, s.Step)
		}
		for state, n := range s.Totals.ByState {
			ended[s.Routine+" "+string(state)] += n
		}
	}
	if wantEnded := map[string]int64{"fixture succeeded": 2, "broken failed": 1}; !maps.Equal(ended, wantEnded) {
		t.Errorf("stats of whole days: %v, want %v", ended, wantEnded)
	}
	wantSteps := []string{"greet"}
	if v >= 2 {
		wantSteps = append(wantSteps, "remember")
	}
	if v >= 5 {
		wantSteps = append(wantSteps, "token")
	}
	for _, r := range runs {
		steps, err := st.StepList(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := st.LogList(ctx, &store.LogListParams{RunID: r.ID})
		if err != nil {
			t.Fatal(err)
		}
		var text []string
		for _, l := range lines {
			text = append(text, l.Text)
		}
		logs := strings.Join(text, "\n")
		if r.Routine == "broken" {
			if r.Error == nil || r.Error.Code != routine.CodeStepFailed || r.Error.ExitCode == nil || *r.Error.ExitCode != 3 ||
				len(steps) != 1 || steps[0].State != routine.StateFailed || !strings.Contains(logs, "about to fail") {
				t.Fatalf("the failed run: %+v, steps %+v, logs %q", r, steps, logs)
			}
			continue
		}
		var ids []string
		for _, s := range steps {
			if s.State != routine.StateSucceeded {
				t.Fatalf("step %s: %s", s.ID, s.State)
			}
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, wantSteps) {
			t.Fatalf("steps %v, want %v", ids, wantSteps)
		}
		if hello := fmt.Sprintf("hello from schema %d, %s", v, r.Input["who"]); !strings.Contains(logs, hello) {
			t.Fatalf("logs %q, want %q", logs, hello)
		}
		if v >= 5 && (!strings.Contains(logs, "token=***") || strings.Contains(logs, fixtureToken)) {
			t.Fatalf("logs %q, want the token redacted", logs)
		}
	}

	if v >= 2 {
		val, found, err := st.StateGet(ctx, &store.StateGetParams{Routine: "fixture", Key: "greeting"})
		if err != nil || !found || val != "hello grace" {
			t.Fatalf("state greeting: %q %v %v", val, found, err)
		}
	}
	if v >= 5 {
		keys, err := secrets.KeySourceFromEnv(func(k string) string {
			if k == "ROUTINES_MASTER_KEY" {
				return fixtureKey
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		val, err := secrets.NewBuiltin(st, keys).Resolve(ctx, "FIXTURE_TOKEN")
		if err != nil || val != fixtureToken {
			t.Fatalf("secret: %q, %v", val, err)
		}
		audit, err := st.AuditList(ctx, &store.AuditListParams{Secret: "FIXTURE_TOKEN"})
		if err != nil || len(audit) < 3 { // set, and resolved by both runs
			t.Fatalf("audit: %d records, %v", len(audit), err)
		}
	}
	// And it takes new work.
	createRun(t, ctx, st, "after-upgrade")
}

// unzip writes the gzip file src, inflated, to dst.
func unzip(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
}

// A store file that exists with no schema yet (schema 0: created, then
// the process died) is migrated from scratch, with nothing to back up.
func TestUpgradeFromEmptyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "backups")); !os.IsNotExist(err) {
		t.Fatalf("a backup of an empty store: %v", err)
	}
}

// Backups before migrations are kept, the newest few.
func TestBackupsBeforeMigrationsPruned(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	for range 5 {
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			_ = os.Remove(f)
		}
		unzip(t, fixturePath(1), path)
		st, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "backups", "*"))
	if len(got) != 6 { // 3 backups and their checksums
		t.Fatalf("backups %v, want the newest 3 with their checksums", got)
	}
}
