package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
	"github.com/routines-dev/routines/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s, _ := setup(t)
		return s
	})
}

type testBundle struct {
	ctx  context.Context
	path string
}

// setup opens a store on a new file and closes it when the test ends.
func setup(t testing.TB) (*sqlite.Store, *testBundle) {
	t.Helper()
	b := &testBundle{ctx: t.Context(), path: filepath.Join(t.TempDir(), "state.db")}
	return b.open(t), b
}

func (b *testBundle) open(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(b.ctx, b.path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw opens the file with no store around it, to look at or tamper with
// what the store wrote.
func (b *testBundle) raw(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", b.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func (b *testBundle) appliedVersions(t *testing.T) []int {
	t.Helper()
	rows, err := b.raw(t).QueryContext(b.ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func createRun(t testing.TB, ctx context.Context, s store.Store, name string) *routine.Run {
	t.Helper()
	run, err := s.RunCreate(ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: name,
		Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: time.Now()})
	if err != nil {
		t.Fatalf("RunCreate: %v", err)
	}
	return run
}

func TestMigrationsAppliedOnce(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	var want []int
	for i := range files {
		want = append(want, i+1)
	}
	run := createRun(t, b.ctx, s, "r")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		s := b.open(t)
		if _, err := s.RunGet(b.ctx, run.ID); err != nil {
			t.Fatalf("RunGet after reopening: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := b.appliedVersions(t); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("applied migrations %v, want %v", got, want)
		}
	}
}

func TestNewerSchema(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A newer binary records its migration in both places.
	known := len(b.appliedVersions(t))
	for _, q := range []string{fmt.Sprintf("INSERT INTO schema_migrations (version, applied_at) VALUES (%d, 0)", known+1),
		fmt.Sprintf("PRAGMA user_version = %d", known+1)} {
		if _, err := b.raw(t).ExecContext(b.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := sqlite.Open(b.ctx, b.path)
	want := fmt.Sprintf("state.db was written by a newer routines (schema %d > %d): run that version of routines or a newer one; "+
		"to go back to this one, restore the backup taken before the upgrade with `routines restore .routines/backups/state-v%d-", known+1, known, known)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: got %v, want an error containing %q", err, want)
	}
}

// A step recorded before outputs had structure holds every output as text,
// an http answer's json too: it loads as it was, text that fromJSON reads.
func TestOutputsOfEarlierVersionsLoad(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	run := createRun(t, b.ctx, s, "r")
	if _, err := b.raw(t).ExecContext(b.ctx, `INSERT INTO step_runs (run_id, phase, step_id, kind, state, attempts, duration_ms, cpu_ms, max_rss_kb, outputs)
		VALUES (?, 'main', 'h', 'http', 'succeeded', 1, 0, 0, 0, ?)`, run.ID, `{"status":"200","json":"{\"id\":7}","headers":"{\"content-type\":\"application/json\"}"}`); err != nil {
		t.Fatal(err)
	}
	steps, err := s.StepList(b.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := routine.Outputs{"status": "200", "json": `{"id":7}`, "headers": `{"content-type":"application/json"}`}
	if len(steps) != 1 || !reflect.DeepEqual(steps[0].Outputs, want) {
		t.Fatalf("outputs %#v, want %#v", steps[0].Outputs, want)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	t.Parallel()
	// A name that needs escaping in the file: URI the driver is given.
	dir := filepath.Join(t.TempDir(), "my project?#%20", ".routines")
	path := filepath.Join(dir, "state.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	run := createRun(t, t.Context(), s, "r")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b := &testBundle{ctx: t.Context(), path: path}
	if _, err := b.open(t).RunGet(b.ctx, run.ID); err != nil {
		t.Fatalf("RunGet after reopening: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("%s: %v, %v; want the database", path, fi, err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestCloseCheckpoints(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	for range 20 {
		createRun(t, b.ctx, s, "r")
	}
	if fi, err := os.Stat(b.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("before Close: WAL %v, %v; want a non-empty file", fi, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if fi, err := os.Stat(b.path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("after Close: WAL of %d bytes, want none", fi.Size())
	}
}

// Two stores on one file stand for two routines processes on one project.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	s1, b := setup(t)
	s2 := b.open(t)
	const perStore = 100
	var wg sync.WaitGroup
	for _, s := range []*sqlite.Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perStore / 2 {
				run, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: "r",
					QueuedAt: time.Now()})
				if err != nil {
					t.Errorf("RunCreate: %v", err)
					return
				}
				if err := s.StepSave(b.ctx, &routine.StepRun{RunID: run.ID, ID: "s", Phase: routine.PhaseMain,
					State: routine.StateRunning}); err != nil {
					t.Errorf("StepSave: %v", err)
					return
				}
				if err := s.LogAppend(b.ctx, []routine.LogLine{{RunID: run.ID, Step: "s", Seq: 1, Time: time.Now(),
					Stream: routine.StreamStdout, Text: "x"}}); err != nil {
					t.Errorf("LogAppend: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, s := range []*sqlite.Store{s1, s2} {
		runs, err := s.RunList(b.ctx, &store.RunListParams{Limit: 1000})
		if err != nil {
			t.Fatalf("store %d: RunList: %v", i+1, err)
		}
		if len(runs) != 2*perStore {
			t.Errorf("store %d sees %d runs, want %d", i+1, len(runs), 2*perStore)
		}
	}
}

func BenchmarkRunUpdate(b *testing.B) {
	s, tb := setup(b)
	run := createRun(b, tb.ctx, s, "r")
	started := time.Now()
	run.StartedAt = &started
	states := []routine.State{routine.StateRunning, routine.StateSucceeded}
	for i := 0; b.Loop(); i++ {
		run.State = states[i%2]
		run.Attempt = i
		if err := s.RunUpdate(tb.ctx, run); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStepSave saves steps as the engine does: each step once when it
// starts (an insert) and once when it ends (a replace).
func BenchmarkStepSave(b *testing.B) {
	s, tb := setup(b)
	run := createRun(b, tb.ctx, s, "r")
	started := time.Now()
	for i := 0; b.Loop(); i++ {
		st := &routine.StepRun{RunID: run.ID, ID: fmt.Sprint("step-", i/2), Phase: routine.PhaseMain, Kind: "run",
			State: routine.StateRunning, StartedAt: &started}
		if i%2 == 1 {
			st.State, st.FinishedAt, st.ExitCode = routine.StateSucceeded, &started, new(int)
			st.Outputs = routine.Outputs{"label": "billing", "confidence": "0.93"}
		}
		if err := s.StepSave(tb.ctx, st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogAppend100 appends batches of 100 lines of 80 bytes.
func BenchmarkLogAppend100(b *testing.B) {
	s, tb := setup(b)
	run := createRun(b, tb.ctx, s, "r")
	lines := make([]routine.LogLine, 100)
	text := strings.Repeat("x", 80)
	var seq int64
	for b.Loop() {
		for i := range lines {
			seq++
			lines[i] = routine.LogLine{RunID: run.ID, Step: "s", Seq: seq, Time: time.Now(),
				Stream: routine.StreamStdout, Text: text}
		}
		if err := s.LogAppend(tb.ctx, lines); err != nil {
			b.Fatal(err)
		}
	}
}

// Two stores on one file claim as two processes would: each run once.
func TestTwoStoresClaim(t *testing.T) {
	t.Parallel()
	s1, b := setup(t)
	s2 := b.open(t)
	const runs = 200
	for range runs {
		createRun(t, b.ctx, s1, "r")
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
	)
	for i, s := range []*sqlite.Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				runs, err := s.RunClaim(b.ctx, &store.RunClaimParams{Worker: fmt.Sprint("w", i), Now: time.Now(), Lease: time.Hour, Limit: 2})
				if err != nil {
					t.Errorf("RunClaim: %v", err)
					return
				}
				if len(runs) == 0 {
					return
				}
				mu.Lock()
				for _, run := range runs {
					claimed[run.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != runs {
		t.Errorf("claimed %d runs, want %d", len(claimed), runs)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("run %s claimed %d times", id, n)
		}
	}
}

// BenchmarkRunClaim claims from a backlog of 10,000 queued runs of ten
// routines, with a ceiling on one of them, and finishes each claimed run
// so that the ceiling does not fill.
func BenchmarkRunClaim(b *testing.B) {
	s, tb := setup(b)
	const backlog = 10_000
	queued := time.Now()
	refill := func(n int) {
		for i := range n {
			if _, err := s.RunCreate(tb.ctx, &store.RunCreateParams{ID: ulid.Make().String(), Routine: fmt.Sprint("r", i%10),
				QueuedAt: queued}); err != nil {
				b.Fatal(err)
			}
		}
	}
	refill(backlog)
	p := &store.RunClaimParams{Worker: "w", Lease: time.Minute, Ceilings: map[string]int{"r0": 4}}
	for b.Loop() {
		p.Now = time.Now()
		runs, err := s.RunClaim(tb.ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) == 0 {
			b.StopTimer()
			refill(backlog)
			b.StartTimer()
			continue
		}
		run := runs[0]
		run.State = routine.StateSucceeded
		if err := s.RunUpdate(tb.ctx, run.Run); err != nil {
			b.Fatal(err)
		}
	}
}

func TestURI(t *testing.T) {
	t.Parallel()
	for abs, want := range map[string]string{
		"/home/me/.routines/state.db": "file:///home/me/.routines/state.db?mode=rw",
		"/a b/#x?.db":                 "file:///a%20b/%23x%3F.db?mode=rw",
		// filepath.ToSlash turns C:\x into C:/x on Windows.
		"C:/Users/me/.routines/state.db": "file:///C:/Users/me/.routines/state.db?mode=rw",
	} {
		if got := sqlite.URI(abs, "mode=rw"); got != want {
			t.Errorf("URI(%q) = %s, want %s", abs, got, want)
		}
	}
}

// A list filtered by a tag and a state walks whichever of the two is
// rarer (RunList): both ways give the same runs, newest first.
func TestRunListTagAndState(t *testing.T) {
	t.Parallel()
	s, b := setup(t)
	start := time.Now().Add(-time.Hour)
	want := map[string][]string{} // tag/state → ids, newest first
	for i := range 300 {
		tag := "common"
		if i%10 == 0 {
			tag = "rare"
		}
		state := routine.StateSucceeded
		if i%7 == 0 {
			state = routine.StateFailed
		}
		id := ulid.MustNew(ulid.Timestamp(start.Add(time.Duration(i)*time.Second)), nil).String()
		if _, err := s.RunCreate(b.ctx, &store.RunCreateParams{ID: id, Routine: "r", Tags: []string{tag}, State: state,
			Trigger: routine.TriggerInfo{Kind: routine.TriggerManual}, QueuedAt: start.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		key := tag + "/" + string(state)
		want[key] = append([]string{id}, want[key]...)
	}
	for key, ids := range want {
		tag, state, _ := strings.Cut(key, "/")
		runs, err := s.RunList(b.ctx, &store.RunListParams{Tag: tag, States: []routine.State{routine.State(state)}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if !reflect.DeepEqual(got, ids[:min(10, len(ids))]) {
			t.Errorf("%s: %v, want %v", key, got, ids[:min(10, len(ids))])
		}
	}
}
