//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// throughputWorkers are the counts of workers remote-throughput measures
// (-workers).
var throughputWorkers = []int{1, 2, 4, 8}

// throughputRuns is how many runs each measurement of remote-throughput
// works off its backlog.
const throughputRuns = 5000

// drained is one measurement of workers working off a backlog.
type drained struct {
	workers int
	runs    int
	rate    float64       // runs/s: see remoteThroughputOnce
	pgCPU   time.Duration // PostgreSQL's CPU per run
	ownCPU  time.Duration // the workers' CPU per run
	claims  float64       // calls of the claim per run
	stmts   float64       // statements per run, of every process
	load    string
	top     []string // the statements of the most execution time, per run
}

// remoteThroughput measures completed no-op runs/s of 1, 2, 4 and 8
// workers working off a backlog, each against a floor in the same run: as
// many goroutines of a bare Go loop doing a claim and a finish in plain
// SQL on a table of as many jobs. Then, for reference, runs of one
// `run: "true"` step with 4 workers, and how fast the server's API
// queues runs.
func remoteThroughput(ctx context.Context, e *pgEnv, bin, dir string, _ int) error {
	var rows [][2]drained
	for _, k := range throughputWorkers {
		ours, err := remoteThroughputOnce(ctx, e, bin, filepath.Join(dir, fmt.Sprint("noop-", k)), "noop", k, throughputRuns)
		if err != nil {
			return err
		}
		floor, err := floorThroughput(ctx, e, k, throughputRuns)
		if err != nil {
			return err
		}
		rows = append(rows, [2]drained{ours, floor})
	}
	truerun, err := remoteThroughputOnce(ctx, e, bin, filepath.Join(dir, "true-4"), "truerun", 4, throughputRuns/5)
	if err != nil {
		return err
	}
	enqueued, load, err := remoteEnqueue(ctx, e, bin, filepath.Join(dir, "enqueue"), throughputRuns)
	if err != nil {
		return err
	}

	fmt.Printf("\nremote-throughput: `routines worker` processes, up and idle, working off a backlog of %d runs of one `state: {get: x}` step queued at once\n", throughputRuns)
	fmt.Println("floor: as many goroutines, each with a connection, claiming and finishing jobs in plain SQL (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING, then UPDATE)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workers\truns/s\tfloor jobs/s\tours ÷ floor\tPostgreSQL CPU/run\tfloor CPU/job\tworkers' CPU/run\tclaims/run\tstatements/run\tload\ttarget\tmet\t")
	allMet := true
	for _, r := range rows {
		o, f := r[0], r[1]
		target, met := "", ""
		if o.workers == 4 {
			target, met = "≥ 2500/s", fmt.Sprint(o.rate >= 2500)
			allMet = allMet && o.rate >= 2500
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f×\t%s\t%s\t%s\t%.2f\t%.1f\t%s\t%s\t%s\t\n", o.workers, o.rate, f.rate, o.rate/f.rate,
			us(o.pgCPU), us(f.pgCPU), us(o.ownCPU), o.claims, o.stmts, o.load, target, met)
	}
	tw.Flush()
	fmt.Printf("for reference, one `run: \"true\"` step (a sandboxed process), 4 workers, %d runs: %.0f runs/s, PostgreSQL CPU/run %s, workers' CPU/run %s, load %s\n",
		truerun.runs, truerun.rate, us(truerun.pgCPU), us(truerun.ownCPU), truerun.load)
	fmt.Printf("queued through the API of one server (POST /v1/routines/noop/runs, 8 clients, no worker): %.0f runs/s, load %s\n", enqueued, load)
	for _, r := range rows {
		if r[0].workers != 4 {
			continue
		}
		fmt.Println("statements of the run of 4 workers, by execution time in PostgreSQL (pg_stat_statements; commits not included):")
		for _, l := range r[0].top {
			fmt.Println("  " + l)
		}
	}
	if !allMet {
		fmt.Println("the remote throughput target was not met")
	}
	return nil
}

// remoteThroughputOnce starts a deployment of k workers, lets them run
// one run of routine name (connections, statements and the revision
// warm), then queues n runs in one statement (copies of that run) and
// waits until every one is final. The rate is n over the time from that
// statement's commit to the last run's end; the CPU times are those of
// the same span.
func remoteThroughputOnce(ctx context.Context, e *pgEnv, bin, dir, name string, k, n int) (drained, error) {
	d, err := newDeployment(ctx, e, bin, dir, map[string]string{"noop": noopRoutine, "truerun": trueRoutine})
	if err != nil {
		return drained{}, err
	}
	defer d.close()
	r := drained{workers: k, runs: n}
	if err := d.startWorkers(k); err != nil {
		return r, err
	}
	w, err := newRunWatcher(ctx, d)
	if err != nil {
		return r, err
	}
	_, template, err := w.run(ctx, name)
	w.close()
	if err != nil {
		return r, err
	}
	if _, err := e.floor.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return r, err
	}
	own0 := d.workersCPU()
	pg0 := e.cpu()
	if _, err := d.db.Exec(ctx, `INSERT INTO runs (id, routine, revision, trigger_kind, trigger_payload, input, tags, state,
			attempt, queued_at, worker, region, cpu_user_ms, cpu_sys_ms, max_rss_kb, replay_of)
		SELECT 'BENCH' || lpad(i::text, 9, '0'), routine, revision, trigger_kind, trigger_payload, input, tags, 'queued',
			0, now(), '', '', 0, 0, 0, ''
		FROM runs, generate_series(1, $2) i WHERE id = $1`, template, n); err != nil {
		return r, err
	}
	start := time.Now()
	if err := d.drain(ctx, 5*time.Minute); err != nil {
		return r, err
	}
	r.load = loadavg()
	r.pgCPU, r.ownCPU = (e.cpu()-pg0)/time.Duration(n), (d.workersCPU()-own0)/time.Duration(n)
	var (
		last      time.Time
		total, ok int
	)
	if err := d.db.QueryRow(ctx, `SELECT max(finished_at), count(*), count(*) FILTER (WHERE state = 'succeeded')
		FROM runs WHERE id LIKE 'BENCH%'`).Scan(&last, &total, &ok); err != nil {
		return r, err
	}
	if total != n || ok != n {
		return r, fmt.Errorf("%d runs of %s, %d succeeded; want %d (logs in %s)", total, name, ok, n, dir)
	}
	r.rate = float64(n) / last.Sub(start).Seconds()
	stmts, err := statements(ctx, e, d)
	if err != nil {
		return r, err
	}
	var all, claims int64
	for q, st := range stmts {
		all += st.calls
		if strings.Contains(q, "routines_claim") {
			claims += st.calls
		}
	}
	r.claims, r.stmts = float64(claims)/float64(n), float64(all)/float64(n)
	r.top = topStatements(stmts, 6, func(s stmtStats) float64 { return float64(s.time) }, func(s stmtStats) string {
		return fmt.Sprintf("%6.2f calls, %s/run", float64(s.calls)/float64(n), us(s.time/time.Duration(n)))
	})
	return r, nil
}

// remoteEnqueue measures how fast one server queues runs through its API,
// no worker taking them.
func remoteEnqueue(ctx context.Context, e *pgEnv, bin, dir string, n int) (float64, string, error) {
	d, err := newDeployment(ctx, e, bin, dir, map[string]string{"noop": noopRoutine})
	if err != nil {
		return 0, "", err
	}
	defer d.close()
	rate, err := d.enqueue("noop", n)
	return rate, loadavg(), err
}

// stmtStats is what pg_stat_statements tells of one statement.
type stmtStats struct {
	calls int64
	time  time.Duration // executing it, in all
}

// statements returns the statements run on d's database since the last
// pg_stat_statements_reset, by their text.
func statements(ctx context.Context, e *pgEnv, d *deployment) (map[string]stmtStats, error) {
	rows, err := e.floor.Query(ctx, `SELECT query, calls, total_exec_time FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)`, strings.TrimPrefix(d.db.Config().Database, "/"))
	if err != nil {
		return nil, err
	}
	out := map[string]stmtStats{}
	for rows.Next() {
		var (
			q  string
			c  int64
			ms float64
		)
		if err := rows.Scan(&q, &c, &ms); err != nil {
			return nil, err
		}
		q = strings.Join(strings.Fields(q), " ")
		s := out[q]
		s.calls += c
		s.time += time.Duration(ms * 1e6)
		out[q] = s
	}
	return out, rows.Err()
}

// floorThroughput works off n jobs with k goroutines, each on a
// connection of its own, in plain SQL: claim the oldest queued job with
// FOR UPDATE SKIP LOCKED, then mark it done.
func floorThroughput(ctx context.Context, e *pgEnv, k, n int) (drained, error) {
	if _, err := e.floor.Exec(ctx, `DROP TABLE IF EXISTS floor_jobs;
		CREATE TABLE floor_jobs (id bigint PRIMARY KEY, state text NOT NULL, worker text, started_at timestamptz, finished_at timestamptz);
		CREATE INDEX floor_jobs_queued ON floor_jobs (id) WHERE state = 'queued'`); err != nil {
		return drained{}, err
	}
	if _, err := e.floor.Exec(ctx, `INSERT INTO floor_jobs (id, state) SELECT i, 'queued' FROM generate_series(1, $1) i`, n); err != nil {
		return drained{}, err
	}
	conns := make([]*pgx.Conn, k)
	for i := range conns {
		c, err := pgx.ConnectConfig(ctx, e.floor.Config())
		if err != nil {
			return drained{}, err
		}
		defer c.Close(context.Background())
		conns[i] = c
	}
	pg0 := e.cpu()
	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done int
	)
	for i, c := range conns {
		wg.Go(func() {
			worker := fmt.Sprint("w", i)
			var mine int
			for {
				var id int64
				err := c.QueryRow(ctx, `UPDATE floor_jobs SET state = 'running', worker = $1, started_at = now()
					WHERE id = (SELECT id FROM floor_jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
					RETURNING id`, worker).Scan(&id)
				if err == pgx.ErrNoRows {
					break
				}
				if err == nil {
					_, err = c.Exec(ctx, `UPDATE floor_jobs SET state = 'done', finished_at = now() WHERE id = $1`, id)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mine++
			}
			mu.Lock()
			done += mine
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		return drained{}, errs[0]
	}
	if done != n {
		return drained{}, fmt.Errorf("floor: %d of %d jobs done", done, n)
	}
	return drained{workers: k, runs: n, rate: float64(n) / elapsed.Seconds(),
		pgCPU: (e.cpu() - pg0) / time.Duration(n), load: loadavg()}, nil
}

// us formats a duration in µs.
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// topStatements returns the n statements of the most by, each as its
// figures (show) and the start of its text.
func topStatements(stmts map[string]stmtStats, n int, by func(stmtStats) float64, show func(stmtStats) string) []string {
	keys := make([]string, 0, len(stmts))
	for q := range stmts {
		keys = append(keys, q)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(by(stmts[b]), by(stmts[a])) })
	var out []string
	for _, q := range keys[:min(n, len(keys))] {
		text := q
		if len(text) > 100 {
			text = text[:100] + "…"
		}
		out = append(out, show(stmts[q])+"  "+text)
	}
	return out
}
