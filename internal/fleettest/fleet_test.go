//go:build linux

package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/pgtest"
)

// fleet is a deployment of real processes on one PostgreSQL: its
// servers and workers, the directory of their machines, and what the
// test reads the store with.
type fleet struct {
	t     *testing.T
	bin   string
	dir   string
	env   []string
	pg    *pgtest.Server
	db    string
	pool  *pgxpool.Pool // the test's own connections, for what it asserts
	token string
	start time.Time // t=0 of the timeline the report and the checks use

	mu           sync.Mutex
	incarnations map[string]int
	procs        []*proc
	servers      map[string]*proc // by machine name, the current incarnation
	workers      map[string]*proc
}

// The timings of the daemons. The lease is short enough that a killed
// worker's runs are taken over within seconds (the default 30 s would
// take half a minute), and shorter than the outage of PostgreSQL, so the
// outage lets leases run out: the hard case, where a worker that was only
// waiting for the store loses its runs to another.
const (
	lease = 4 * time.Second
	slots = 4
)

// keepEnv names a directory where the fleet's files stay after the test:
// the logs of every process, the effects log, the routines.
const keepEnv = "ROUTINES_FLEET_KEEP"

// fleetDir is the fleet's directory: a new one in $ROUTINES_FLEET_KEEP,
// kept, else a temporary one.
func fleetDir(t *testing.T) string {
	keep := os.Getenv(keepEnv)
	if keep == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(keep, "fleet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the fleet's files stay in %s", dir)
	return dir
}

// newFleet starts PostgreSQL and the schema's audit tables, and stops
// every process in t.Cleanup, printing their logs' tails when t failed.
func newFleet(t *testing.T) *fleet {
	f := &fleet{t: t, bin: build(t), dir: fleetDir(t), token: "fleet-token",
		incarnations: map[string]int{}, servers: map[string]*proc{}, workers: map[string]*proc{}}
	for _, d := range []string{"logs", "effects", "home"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.env = append(os.Environ(), "HOME="+filepath.Join(f.dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(f.dir, "home", ".config"),
		"XDG_CACHE_HOME="+filepath.Join(f.dir, "home", ".cache"), "ROUTINES_TOKEN="+f.token, "ROUTINES_PROFILE=")
	f.pg = pgtest.StartServer(t)
	f.db = f.pg.Database(t)
	t.Cleanup(func() {
		f.mu.Lock()
		procs := f.procs
		f.mu.Unlock()
		for _, p := range procs {
			if p.alive() {
				p.kill()
			}
		}
		if t.Failed() && os.Getenv(keepEnv) == "" {
			for _, p := range procs {
				t.Logf("--- %s (%s), last lines:\n%s", p.name, filepath.Base(p.log), p.tail(40))
			}
			if len(procs) > 0 {
				t.Logf("set %s=DIR to keep every log", keepEnv)
			}
		}
		if f.pool != nil {
			f.pool.Close()
		}
	})
	return f
}

// machine starts (or starts again) the server or worker of a machine:
// its cache and work directories are kept across restarts. Flags in
// extra override the fleet's.
func (f *fleet) machine(name string, extra ...string) *proc {
	f.t.Helper()
	args := []string{"--db", f.db, "--cache-dir", filepath.Join(f.dir, name, "cache"), "--work-dir", filepath.Join(f.dir, name, "work"),
		"--poll", "200ms", "--grace", "1s", "--lease", lease.String()}
	role := strings.TrimRight(name, "-0123456789")
	switch role {
	case "server":
		args = append([]string{"server", "--addr", "127.0.0.1:0", "--token", f.token}, args...)
	case "worker":
		args = append([]string{"worker", "--slots", fmt.Sprint(slots)}, args...)
	}
	p := f.spawn(name, append(args, extra...)...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if role == "server" {
		f.servers[name] = p
	} else {
		f.workers[name] = p
	}
	return p
}

// connect opens the test's pool on the store, once the first server has
// migrated it, and adds the audit tables the checks read.
func (f *fleet) connect() {
	f.t.Helper()
	pool, err := pgxpool.New(context.Background(), f.db)
	if err != nil {
		f.t.Fatal(err)
	}
	f.pool = pool
	if _, err := pool.Exec(context.Background(), auditSQL); err != nil {
		f.t.Fatalf("audit tables: %v", err)
	}
}

// auditSQL records, in tables of the test, every change of a run's state
// or worker, and every write of a succeeded step record with the
// database's time: the history the store's own tables overwrite.
const auditSQL = `
CREATE TABLE proof_run_events (seq bigserial PRIMARY KEY, run_id text, routine text,
	old_state text, new_state text, old_worker text, new_worker text);
CREATE FUNCTION proof_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO proof_run_events (run_id, routine, old_state, new_state, old_worker, new_worker)
		VALUES (NEW.id, NEW.routine, '', NEW.state, '', NEW.worker);
	ELSIF NEW.state <> OLD.state OR NEW.worker <> OLD.worker THEN
		INSERT INTO proof_run_events (run_id, routine, old_state, new_state, old_worker, new_worker)
		VALUES (NEW.id, NEW.routine, OLD.state, NEW.state, OLD.worker, NEW.worker);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER proof_runs AFTER INSERT OR UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION proof_run_event();
CREATE TABLE proof_step_events (seq bigserial PRIMARY KEY, run_id text, phase text, step_id text,
	outputs text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION proof_step_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO proof_step_events (run_id, phase, step_id, outputs) VALUES (NEW.run_id, NEW.phase, NEW.step_id, NEW.outputs);
	RETURN NULL;
END $$;
CREATE TRIGGER proof_steps AFTER INSERT OR UPDATE ON step_runs FOR EACH ROW WHEN (NEW.state = 'succeeded')
	EXECUTE FUNCTION proof_step_event();
`

// effects is the log the steps append their side effects to.
func (f *fleet) effects() string { return filepath.Join(f.dir, "effects", "log") }

// step is a run step that appends its begin and end to the effects log,
// sleeping between them, and outputs a token that names this execution
// of it, so that a step record tells which execution it records.
func (f *fleet) step(id, sleep string) string {
	s := fmt.Sprintf(`  - id: %[1]s
    run: |
      tok=$$.$EPOCHREALTIME
      echo "begin $ROUTINES_RUN_ID %[1]s $tok $EPOCHREALTIME" >> %[2]s
`, id, f.effects())
	if sleep != "" {
		s += "      sleep " + sleep + "\n"
	}
	return s + fmt.Sprintf(`      echo "end $ROUTINES_RUN_ID %[1]s $tok $EPOCHREALTIME" >> %[2]s
      echo "token=$tok" >> "$ROUTINES_OUTPUT"
`, id, f.effects())
}

// The routines of the proof, by name: their steps, and what else they
// say. limitedSleep is how long a step of limited takes.
const limitedSleep = 200 * time.Millisecond

var routineSteps = map[string][]string{
	"noop":    {"s"},
	"multi":   {"s1", "s2", "s3"},
	"limited": {"s"},
	"ticker":  {"s"},
	"ticker3": {"s"},
	"cron":    {"s"},
	"alert":   {"s"},
}

// schedules are the routines fired by a schedule, and its period.
var schedules = map[string]time.Duration{"ticker": time.Second, "ticker3": 3 * time.Second, "cron": time.Second}

// push writes the routines and pushes them with `routines push`.
func (f *fleet) push(server *proc) {
	f.t.Helper()
	head := "permissions:\n  write: [" + filepath.Dir(f.effects()) + "]\n"
	files := map[string]string{
		"noop":    "name: noop\n" + head + "steps:\n" + f.step("s", ""),
		"multi":   "name: multi\n" + head + "steps:\n" + f.step("s1", "") + f.step("s2", "0.3") + f.step("s3", ""),
		"limited": "name: limited\nconcurrency: {max: 2}\n" + head + "steps:\n" + f.step("s", fmt.Sprint(limitedSleep.Seconds())),
		"ticker":  "name: ticker\ntriggers:\n  - every: 1s\n    overlap: allow\n" + head + "steps:\n" + f.step("s", ""),
		"ticker3": "name: ticker3\ntriggers:\n  - every: 3s\n    overlap: allow\n" + head + "steps:\n" + f.step("s", ""),
		"cron":    "name: cron\ntriggers:\n  - cron: \"* * * * * *\"\n    overlap: allow\n" + head + "steps:\n" + f.step("s", ""),
		"alert": "name: alert\ntriggers:\n  - event:\n      name: host.alert\n      dedupe: \"{{ event.host }}\"\n      window: 10m\n" +
			head + "steps:\n" + f.step("s", ""),
	}
	f.pushFiles(server, files)
}

// pushFiles writes each routine's routine.yaml, by name, into a new
// source directory and pushes them with `routines push`.
func (f *fleet) pushFiles(server *proc, files map[string]string) {
	f.t.Helper()
	src, err := os.MkdirTemp(f.dir, "src-")
	if err != nil {
		f.t.Fatal(err)
	}
	for name, yaml := range files {
		if err := os.MkdirAll(filepath.Join(src, name), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name, "routine.yaml"), []byte(yaml), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	cmd := exec.Command(f.bin, "push", src, "-m", "proof")
	cmd.Env = append(f.env, "ROUTINES_SERVER=http://"+server.addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("push: %v\n%s", err, out)
	}
}

// client is the HTTP client of the load: a call that hangs fails the
// proof rather than the test's deadline.
var client = &http.Client{Timeout: 15 * time.Second}

// call is one API call of the load and what came of it.
type call struct {
	sent, took time.Duration // from the fleet's start
	server     string
	path       string
	host       string // of an event
	status     int    // 0: no answer (err)
	err        error
	runs       []api.EventRun // the runs it was answered with
}

// post makes one API call to server and records it.
func (f *fleet) post(server *proc, name, path, body, host string) *call {
	c := &call{sent: time.Since(f.start), server: name, path: path, host: host}
	req, _ := http.NewRequest(http.MethodPost, "http://"+server.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := client.Do(req)
	c.took = time.Since(f.start) - c.sent
	if err != nil {
		c.err = err
		return c
	}
	defer resp.Body.Close()
	c.status = resp.StatusCode
	data, _ := io.ReadAll(resp.Body)
	if c.status != http.StatusAccepted {
		c.err = fmt.Errorf("%d %s", c.status, strings.TrimSpace(string(data)))
		return c
	}
	if strings.HasPrefix(path, "/v1/events/") {
		var res api.EventResult
		c.err = json.Unmarshal(data, &res)
		c.runs = res.Runs
		return c
	}
	var q api.Queued
	c.err = json.Unmarshal(data, &q)
	c.runs = []api.EventRun{{Routine: strings.Split(path, "/")[3], RunID: q.RunID}}
	return c
}
