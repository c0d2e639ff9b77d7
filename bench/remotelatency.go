//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// runTimes are the times the deployment recorded of one run.
type runTimes struct {
	queued, firstStep, finished time.Time
}

// startLatency is queued → first step started.
func (r runTimes) startLatency() time.Duration { return r.firstStep.Sub(r.queued) }

// runWatcher queues runs through a server's API and waits for their end,
// looking at the run every 2 ms: the times measured are those the
// deployment recorded, whenever the watcher sees them.
type runWatcher struct {
	d      *deployment
	conn   *pgx.Conn
	client *http.Client
}

func newRunWatcher(ctx context.Context, d *deployment) (*runWatcher, error) {
	c, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return nil, err
	}
	return &runWatcher{d: d, conn: c, client: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (w *runWatcher) close() { w.conn.Close(context.Background()) }

// run queues a run of name and waits until it ended; it returns the
// run's times and id.
func (w *runWatcher) run(ctx context.Context, name string) (runTimes, string, error) {
	resp, err := w.client.Post(w.d.server.addr()+"/v1/routines/"+name+"/runs", "application/json", strings.NewReader(`{}`))
	if err != nil {
		return runTimes{}, "", err
	}
	var q struct {
		RunID string `json:"run_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&q)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		return runTimes{}, "", fmt.Errorf("queue a run of %s: %d %v", name, resp.StatusCode, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		var (
			t     runTimes
			state string
			step  *time.Time
		)
		if err := w.conn.QueryRow(ctx, `SELECT r.state, r.queued_at, r.finished_at, s.started_at FROM runs r
			LEFT JOIN step_runs s ON s.run_id = r.id WHERE r.id = $1 AND r.state IN ('succeeded', 'failed', 'dead', 'cancelled')`,
			q.RunID).Scan(&state, &t.queued, &t.finished, &step); err == nil {
			if state != "succeeded" || step == nil {
				return t, "", fmt.Errorf("run %s of %s ended %s (logs in %s)", q.RunID, name, state, w.d.dir)
			}
			t.firstStep = *step
			return t, q.RunID, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return t, "", err
		}
		if time.Now().After(deadline) {
			return t, "", fmt.Errorf("run %s of %s did not end in 30 s (logs in %s)", q.RunID, name, w.d.dir)
		}
	}
}

// notifyFloor measures the floor of a wake-up through PostgreSQL: an
// INSERT with a NOTIFY in its transaction, until a LISTENing connection
// has it.
type notifyFloor struct{ send, listen *pgx.Conn }

func newNotifyFloor(ctx context.Context, e *pgEnv) (*notifyFloor, error) {
	if _, err := e.floor.Exec(ctx, `CREATE TABLE IF NOT EXISTS floor_notes (id bigserial PRIMARY KEY, at timestamptz NOT NULL)`); err != nil {
		return nil, err
	}
	l, err := pgx.ConnectConfig(ctx, e.floor.Config())
	if err != nil {
		return nil, err
	}
	if _, err := l.Exec(ctx, `LISTEN floor_wake`); err != nil {
		l.Close(ctx)
		return nil, err
	}
	return &notifyFloor{send: e.floor, listen: l}, nil
}

func (f *notifyFloor) close() { f.listen.Close(context.Background()) }

func (f *notifyFloor) once(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := f.send.Exec(ctx, `WITH i AS (INSERT INTO floor_notes (at) VALUES (now()) RETURNING id)
		SELECT pg_notify('floor_wake', id::text) FROM i`); err != nil {
		return 0, err
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := f.listen.WaitForNotification(wait); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// watchedDeployment starts a deployment of the routines with workers
// workers (each with workerArgs), a watcher of its runs and the notify
// floor; done stops them all.
func watchedDeployment(ctx context.Context, e *pgEnv, bin, dir string, routines map[string]string, workers int,
	workerArgs ...string) (w *runWatcher, fl *notifyFloor, done func(), err error) {
	d, err := newDeployment(ctx, e, bin, dir, routines)
	if err != nil {
		return nil, nil, nil, err
	}
	if err = d.startWorkers(workers, workerArgs...); err == nil {
		if w, err = newRunWatcher(ctx, d); err == nil {
			if fl, err = newNotifyFloor(ctx, e); err != nil {
				w.close()
			}
		}
	}
	if err != nil {
		d.close()
		return nil, nil, nil, err
	}
	return w, fl, func() { fl.close(); w.close(); d.close() }, nil
}

// remoteLatency measures queued → first step started of runs queued one
// at a time through the server's API, 4 idle workers waiting: the server
// commits the run, PostgreSQL notifies, a worker claims it and starts its
// step. Floor, interleaved: INSERT + NOTIFY → LISTEN.
func remoteLatency(ctx context.Context, e *pgEnv, bin, dir string, reps int) error {
	w, fl, done, err := watchedDeployment(ctx, e, bin, dir, map[string]string{"noop": noopRoutine, "truerun": trueRoutine}, 4)
	if err != nil {
		return err
	}
	defer done()
	n := max(reps*10, 100)
	for range 10 { // warm-up: connections, statements, sandbox rulesets
		for _, name := range []string{"noop", "truerun"} {
			if _, _, err := w.run(ctx, name); err != nil {
				return err
			}
		}
	}
	var noop, truerun, floor []time.Duration
	for range n {
		t, _, err := w.run(ctx, "noop")
		if err != nil {
			return err
		}
		noop = append(noop, t.startLatency())
		if t, _, err = w.run(ctx, "truerun"); err != nil {
			return err
		}
		truerun = append(truerun, t.startLatency())
		f, err := fl.once(ctx)
		if err != nil {
			return err
		}
		floor = append(floor, f)
	}
	fmt.Printf("\nremote-latency: runs queued one at a time through the API of `routines server`, 4 idle `routines worker`s (%d runs each, load %s)\n", n, loadavg())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tp50\tp99\tfloor: INSERT + NOTIFY → LISTEN p50 / p99\tp50 ÷ floor\ttarget\tmet\t")
	met := pct(noop, 50) < 5*time.Millisecond
	fmt.Fprintf(tw, "state step: queued → first step started\t%s\t%s\t%s / %s\t%.1f×\tp50 < 5 ms\t%v\t\n", ms(pct(noop, 50)), ms(pct(noop, 99)),
		ms(pct(floor, 50)), ms(pct(floor, 99)), float64(pct(noop, 50))/float64(pct(floor, 50)), met)
	fmt.Fprintf(tw, "run true: queued → first step started\t%s\t%s\t\t%.1f×\t\t\t\n", ms(pct(truerun, 50)), ms(pct(truerun, 99)), float64(pct(truerun, 50))/float64(pct(floor, 50)))
	tw.Flush()
	if !met {
		fmt.Println("the remote latency target was not met")
	}
	return nil
}

// bigRoutine is the routine of remote-cold, pushed with a file of 1 MiB.
const bigRoutine = "name: big\nsteps:\n  - id: get\n    state: { get: x }\n"

// remoteCold measures the start of the first run of a revision on a
// worker (cold: the worker fetches the 1 MiB bundle from PostgreSQL and
// extracts it into its cache) against the next run of that revision
// (warm), each queued → first step started. The worker reads the current
// revisions once an hour here, so it meets each revision in a run. Floor
// of the cold start, in the same run: the bench reading the bundle's
// bytes from the database and extracting them with archive/tar.
func remoteCold(ctx context.Context, e *pgEnv, bin, dir string, reps int) error {
	w, fl, done, err := watchedDeployment(ctx, e, bin, dir, map[string]string{"noop": noopRoutine}, 1, "--poll", "1h")
	if err != nil {
		return err
	}
	defer done()
	d := w.d
	var cold, warm, extract, notify []time.Duration
	var size int
	for i := range reps + 1 {
		blob := make([]byte, 1<<20)
		rand.Read(blob) // incompressible: the bundle stays 1 MiB
		if err := d.push("big", map[string][]byte{"routine.yaml": []byte(bigRoutine), "blob.bin": blob}); err != nil {
			return err
		}
		c, _, err := w.run(ctx, "big")
		if err != nil {
			return err
		}
		h, _, err := w.run(ctx, "big")
		if err != nil {
			return err
		}
		x, n, err := extractFloor(ctx, d, filepath.Join(dir, "floor", fmt.Sprint(i)))
		if err != nil {
			return err
		}
		f, err := fl.once(ctx)
		if err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up
		}
		cold, warm, extract, notify, size = append(cold, c.startLatency()), append(warm, h.startLatency()), append(extract, x), append(notify, f), n
	}
	fmt.Printf("\nremote-cold: first run of a newly pushed revision on a worker (cold: fetch + extract a %.2f MiB bundle) and the next run (warm), queued → first step started (%d pushes, load %s)\n",
		float64(size)/(1<<20), reps, loadavg())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tp50\tmax\tfloor\tfloor p50\tp50 ÷ floor\ttarget\tmet\t")
	coldMet, warmMet := pct(cold, 50) < 150*time.Millisecond, pct(warm, 50) < 5*time.Millisecond
	fmt.Fprintf(tw, "cold start\t%s\t%s\tSELECT the bundle + extract it (archive/tar)\t%s\t%.1f×\t< 150 ms\t%v\t\n", ms(pct(cold, 50)), ms(pct(cold, 100)),
		ms(pct(extract, 50)), float64(pct(cold, 50))/float64(pct(extract, 50)), coldMet)
	fmt.Fprintf(tw, "warm start\t%s\t%s\tINSERT + NOTIFY → LISTEN\t%s\t%.1f×\t< 5 ms\t%v\t\n", ms(pct(warm, 50)), ms(pct(warm, 100)),
		ms(pct(notify, 50)), float64(pct(warm, 50))/float64(pct(notify, 50)), warmMet)
	tw.Flush()
	if !coldMet || !warmMet {
		fmt.Println("a start target was not met")
	}
	return nil
}

// extractFloor reads the current bundle of routine big from the database
// and extracts it under dir: the least a cold start does.
func extractFloor(ctx context.Context, d *deployment, dir string) (time.Duration, int, error) {
	start := time.Now()
	var data []byte
	if err := d.db.QueryRow(ctx, `SELECT b.data FROM bundles b JOIN deployments d ON d.hash = b.hash
		WHERE d.routine = 'big' ORDER BY d.seq DESC LIMIT 1`).Scan(&data); err != nil {
		return 0, 0, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return 0, 0, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, 0, err
		}
		f, err := os.Create(p)
		if err != nil {
			return 0, 0, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return time.Since(start), len(data), nil
}

// idleWindow is how long remote-idle counts the statements of an idle
// deployment.
const idleWindow = 30 * time.Second

// remoteIdle counts what one server and four workers, idle, ask of
// PostgreSQL: statements (pg_stat_statements: exact, but blind to empty
// statements such as the pool's pings) and transactions (pg_stat_database:
// every statement outside a transaction, pings included, as the backends
// report them, up to 10 s late each) over idleWindow, after 20 runs and
// 12 s of quiet, so that what the backends did before reaches the
// statistics before the window.
func remoteIdle(ctx context.Context, e *pgEnv, bin, dir string, _ int) error {
	d, err := newDeployment(ctx, e, bin, dir, map[string]string{"noop": noopRoutine})
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.startWorkers(4); err != nil {
		return err
	}
	if _, err := d.enqueue("noop", 20); err != nil {
		return err
	}
	if err := d.drain(ctx, time.Minute); err != nil {
		return err
	}
	time.Sleep(12 * time.Second)
	db := strings.TrimPrefix(d.db.Config().Database, "/")
	xacts := func() (int64, error) {
		var n int64
		err := e.floor.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, db).Scan(&n)
		return n, err
	}
	if _, err := e.floor.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return err
	}
	x0, err := xacts()
	if err != nil {
		return err
	}
	time.Sleep(idleWindow)
	x1, err := xacts()
	if err != nil {
		return err
	}
	stmts, err := statements(ctx, e, d)
	if err != nil {
		return err
	}
	var all int64
	for _, st := range stmts {
		all += st.calls
	}
	secs := idleWindow.Seconds()
	perS, xactS := float64(all)/secs, float64(x1-x0)/secs
	// The target holds for both counts: the pings are round trips too.
	met := max(perS, xactS) < 5
	fmt.Printf("\nremote-idle: one `routines server` and four `routines worker`s, idle, for %s (load %s)\n", idleWindow, loadavg())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tper second\ttarget\tmet\t")
	fmt.Fprintf(tw, "statements (pg_stat_statements)\t%.2f\t< 5\t%v\t\n", perS, perS < 5)
	fmt.Fprintf(tw, "transactions (pg_stat_database, pings included)\t%.2f\t< 5\t%v\t\n", xactS, xactS < 5)
	tw.Flush()
	fmt.Println("statements of the window (calls, text):")
	for _, l := range topStatements(stmts, 8, func(s stmtStats) float64 { return float64(s.calls) }, func(s stmtStats) string {
		return fmt.Sprintf("%6d", s.calls)
	}) {
		fmt.Println("  " + l)
	}
	if !met {
		fmt.Println("the idle target was not met")
	}
	return nil
}
