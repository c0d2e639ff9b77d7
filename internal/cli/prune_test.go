//go:build linux

// The daemon runs as a child process of the test (startServeProcess in
// serve_limits_test.go), which is Linux's.

package cli_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// seeded is a project whose store holds runs of various ages, written
// there as a daemon would have.
type seeded struct {
	t   *testing.T
	dir string
	st  *sqlite.Store
}

func newSeeded(t *testing.T) *seeded {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, ".routines", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &seeded{t: t, dir: dir, st: st}
}

// run records a run of routine name that ended in state ago ago (not
// ended when state is not final), with lines log lines of 200 bytes and
// a folder with an artifact.
func (s *seeded) run(name string, state routine.State, ago time.Duration, lines int) *routine.Run {
	s.t.Helper()
	at := time.Now().Add(-ago)
	// Delayed, so that no daemon takes it before it ends here.
	run, err := s.st.RunCreate(s.t.Context(), &store.RunCreateParams{ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(),
		Routine: name, Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: at, NotBefore: ptrTo(time.Now().Add(24 * time.Hour))})
	if err != nil {
		s.t.Fatal(err)
	}
	var ls []routine.LogLine
	for i := range lines {
		ls = append(ls, routine.LogLine{RunID: run.ID, Seq: int64(i + 1), Step: "a", Time: at, Stream: routine.StreamStdout, Text: strings.Repeat("x", 200)})
	}
	if err := s.st.LogAppend(s.t.Context(), ls); err != nil {
		s.t.Fatal(err)
	}
	if state.Final() {
		run.State, run.StartedAt, run.FinishedAt = state, &at, &at
		if err := s.st.RunUpdate(s.t.Context(), run); err != nil {
			s.t.Fatal(err)
		}
	}
	art := filepath.Join(s.dir, ".routines", "runs", run.ID, "artifacts", "a")
	if err := os.MkdirAll(art, 0o700); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(art, "out.txt"), []byte("artifact"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return run
}

func ptrTo[T any](v T) *T { return &v }

// has reports whether the run is still in the store, and how many lines
// it kept.
func (s *seeded) has(id string) (bool, int) {
	s.t.Helper()
	if _, err := s.st.RunGet(s.t.Context(), id); errors.Is(err, routine.ErrNotFound) {
		return false, 0
	} else if err != nil {
		s.t.Fatal(err)
	}
	ls, err := s.st.LogList(s.t.Context(), &store.LogListParams{RunID: id})
	if err != nil {
		s.t.Fatal(err)
	}
	return true, len(ls)
}

// pruneProcess runs `routines prune args` on the project as a process of
// its own, and decodes its JSON.
func (s *seeded) pruneProcess(args ...string) (out map[string]any, stderr string) {
	s.t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"prune", "--project", s.dir, "-o", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "ROUTINES_TEST_SERVE_CHILD=1")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	data, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("prune %v: %v\n%s", args, err, errOut.String())
	}
	if err := json.Unmarshal(data, &out); err != nil {
		s.t.Fatalf("prune -o json: %v: %s", err, data)
	}
	return out, errOut.String()
}

// TestRetentionBesideTheDaemon: the daemon (a process of its own) prunes
// what the default retention lets go as soon as it starts, keeping dead
// letters and runs not final; `routines prune`, another process, prunes
// beside it, and deletes the dead letters when told to.
func TestRetentionBesideTheDaemon(t *testing.T) {
	t.Parallel()
	s := newSeeded(t)
	day := 24 * time.Hour
	old := s.run("r", routine.StateSucceeded, 40*day, 5)
	dead := s.run("r", routine.StateDead, 40*day, 5)
	waiting := s.run("elsewhere", routine.StateQueued, 40*day, 5)
	middle := s.run("r", routine.StateFailed, 10*day, 5) // its lines are past 7 days
	young := s.run("r", routine.StateSucceeded, day, 5)
	if err := os.WriteFile(filepath.Join(s.dir, "routine.yaml"), []byte("name: r\nsteps:\n  - id: a\n    run: echo a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServeProcess(t, s.dir, nil)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if kept, _ := s.has(old.ID); !kept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not prune run %s; its log:\n%s", old.ID, p.logs())
		}
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(p.logs(), "retention: pruned"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log its pass:\n%s", p.logs())
		}
	}
	for _, c := range []struct {
		name  string
		run   *routine.Run
		lines int
	}{{"dead", dead, 5}, {"waiting", waiting, 5}, {"middle", middle, 0}, {"young", young, 5}} {
		if kept, lines := s.has(c.run.ID); !kept || lines != c.lines {
			t.Errorf("%s: kept %v with %d lines; want kept with %d", c.name, kept, lines, c.lines)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".routines", "runs", old.ID)); !os.IsNotExist(err) {
		t.Errorf("the folder of the pruned run is still there: %v", err)
	}

	// More old runs while the daemon runs: prune, as another writer.
	var more []*routine.Run
	for range 20 {
		more = append(more, s.run("r", routine.StateSucceeded, 35*day, 3))
	}
	dry, _ := s.pruneProcess("--dry-run")
	if dry["runs"] != 20.0 || dry["dry_run"] != true {
		t.Errorf("prune --dry-run: %v; want 20 runs", dry)
	}
	if kept, _ := s.has(more[0].ID); !kept {
		t.Fatal("a dry run deleted a run")
	}
	out, _ := s.pruneProcess()
	// The daemon may have taken some of them first.
	if n := out["runs"].(float64); n > 20 {
		t.Errorf("prune removed %v runs, want at most 20", n)
	}
	for _, r := range more {
		if kept, _ := s.has(r.ID); kept {
			t.Errorf("run %s outlived prune", r.ID)
		}
	}
	out, _ = s.pruneProcess("--dead-letters")
	if out["dead_letters"] != 1.0 || out["dead_letters_kept"] != 0.0 {
		t.Errorf("prune --dead-letters: %v; want the one dead run", out)
	}
	if kept, _ := s.has(dead.ID); kept {
		t.Error("the dead run outlived prune --dead-letters")
	}
	if strings.Contains(p.logs(), "level=WARN msg=\"retention") {
		t.Errorf("the daemon warned about retention:\n%s", p.logs())
	}
}

// TestPruneShrinksTheStore: pruning then vacuuming gives the space back
// to the file system; a store made before incremental vacuum is
// rewritten once for it, when no daemon runs.
func TestPruneShrinksTheStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".routines", "state.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// A store of an older routines: tables before incremental vacuum.
	db, err := sql.Open("sqlite", sqlite.URI(path, "_pragma=journal_mode(WAL)"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE older (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s := &seeded{t: t, dir: dir, st: st}
	for range 200 {
		s.run("r", routine.StateSucceeded, 40*24*time.Hour, 40)
	}
	keep := s.run("r", routine.StateSucceeded, time.Hour, 1)
	st.Close()

	r := routines(t, dir, "prune", "-o", "json")
	if r.code != 0 {
		t.Fatalf("prune: %+v", r)
	}
	var out struct {
		Runs             int64 `json:"runs"`
		Artifacts        int64 `json:"artifacts"`
		Before, After    int64
		StoreBytesBefore int64 `json:"store_bytes_before"`
		StoreBytesAfter  int64 `json:"store_bytes_after"`
		Compacted        bool  `json:"compacted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if out.Runs != 200 || out.Artifacts != 200 || !out.Compacted {
		t.Errorf("prune: %s; want 200 runs and their folders, and the store rewritten", r.stdout)
	}
	if out.StoreBytesBefore < 2<<20 || out.StoreBytesAfter > out.StoreBytesBefore/4 {
		t.Errorf("the store went from %d to %d bytes; want it a quarter or less", out.StoreBytesBefore, out.StoreBytesAfter)
	}
	st, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.RunGet(t.Context(), keep.ID); err != nil {
		t.Errorf("the young run: %v", err)
	}
	if v, err := st.Vacuum(t.Context(), 0); err != nil || !v.Incremental {
		t.Errorf("after prune the store is %+v, %v; want incremental", v, err)
	}
}

// TestPruneText: what prune says, and a configuration with problems.
func TestPruneText(t *testing.T) {
	t.Parallel()
	s := newSeeded(t)
	s.run("r", routine.StateSucceeded, 40*24*time.Hour, 2)
	s.run("r", routine.StateDead, 40*24*time.Hour, 2)
	conf := filepath.Join(s.dir, "routines.project.yaml")
	if err := os.WriteFile(conf, []byte("retention:\n  runs: {max_age: 20d, max_count: 1000}\n  logs: {max_age: 3d}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := routines(t, s.dir, "prune", "--dry-run")
	want := "would prune project DIR, by the retention of DIR/routines.project.yaml\n" +
		"KIND           WOULD REMOVE  KEPT FOR\n" +
		"runs           1             20d, the newest 1000 per routine (with their steps, logs, tags and artifacts)\n" +
		"dead letters   0             until replayed (1 dead run left; --dead-letters deletes them)\n" +
		"log lines      0             3d\n" +
		"artifacts      1 (8 B)       30d\n" +
		"audit records  0             365d\n"
	// The two runs ended in one minute, or two: a row of the minute
	// rollups each.
	rest := regexp.MustCompile(`^rollups        [12]             minutes 31d, hours 400d, days kept \(stats outlive the runs\)\nstore: \d`)
	got := strings.ReplaceAll(r.stdout, s.dir, "DIR")
	if r.code != 0 || !strings.HasPrefix(got, want) || !rest.MatchString(strings.TrimPrefix(got, want)) {
		t.Errorf("prune --dry-run: exit %d\n%s\nwant:\n%srollups …\nstore: …\nstderr: %s", r.code, got, want, r.stderr)
	}

	if err := os.WriteFile(conf, []byte("retention:\n  runs: {max_age: 30s}\n  log: {max_age: 1d}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = routines(t, s.dir, "prune")
	if r.code != 2 || !strings.Contains(r.stderr, conf+":2:19: retention.runs.max_age: 30s is too short: write 1m or more") ||
		!strings.Contains(r.stderr, conf+`:3:3: unknown key "log"; did you mean "logs"?`) {
		t.Errorf("prune with a bad file: exit %d\n%s", r.code, r.stderr)
	}
}
