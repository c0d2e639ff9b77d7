//go:build linux

package main

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/routines-dev/routines/internal/store/sqlite"
)

// soakRuns is how many runs the soak pushes through the daemon (-soak-runs).
var soakRuns *int

// soakBench pushes soakRuns runs through `routines serve` with a
// retention of a minute, so that pruning bites all along, and samples
// the store's size (file and write-ahead log) and the daemon's RSS every
// ten seconds: both must stay bounded while the runs pass through. Most
// runs are one `state: {get: x}` step (the throughput workload); one in
// 200 is a `run` step that prints a line and keeps an artifact, so
// that log lines and run folders are pruned too. The daemon logs each
// pass of retention; the longest batch of all passes is reported.
func soakBench(bin, tmp string) error {
	total := int64(*soakRuns)
	const clients, every, sampleEvery = 32, 200, 10 * time.Second
	dir := filepath.Join(tmp, "soak")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	policy := "retention:\n  runs: {max_age: 1m}\n  logs: {max_age: 1m}\n  artifacts: {max_age: 1m}\n  audit: {max_age: 1m}\n"
	if err := os.WriteFile(filepath.Join(dir, "routines.project.yaml"), []byte(policy), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(tmp, "soak-daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	d, err := startDaemonLogged(bin, dir, map[string]string{
		"noop": "name: noop\ntriggers:\n  - webhook: { path: /noop }\nsteps:\n  - id: get\n    state: { get: x }\n",
		"echo": "name: echo\ntriggers:\n  - webhook: { path: /echo }\nsteps:\n  - id: echo\n    run: echo line && echo kept > out.txt\n    artifacts: [out.txt]\n",
	}, logFile, "--max-queued", "20000")
	if err != nil {
		return err
	}
	defer d.stop()
	dbPath := filepath.Join(dir, ".routines", "state.db")
	db, err := sql.Open("sqlite", sqlite.URI(dbPath, "_pragma=busy_timeout(10000)&_pragma=query_only(1)"))
	if err != nil {
		return err
	}
	defer db.Close()

	type point struct {
		at                   time.Duration
		accepted             int64
		runs, lines, folders int64
		db, wal, rss         int64
	}
	var (
		accepted, refused, errs atomic.Int64
		mu                      sync.Mutex
		points                  []point
	)
	start := time.Now()
	take := func() point {
		p := point{at: time.Since(start).Round(time.Second), accepted: accepted.Load()}
		db.QueryRow("SELECT count(*) FROM runs").Scan(&p.runs)
		db.QueryRow("SELECT count(*) FROM logs").Scan(&p.lines)
		if entries, err := os.ReadDir(filepath.Join(dir, ".routines", "runs")); err == nil {
			p.folders = int64(len(entries))
		}
		if fi, err := os.Stat(dbPath); err == nil {
			p.db = fi.Size()
		}
		if fi, err := os.Stat(dbPath + "-wal"); err == nil {
			p.wal = fi.Size()
		}
		p.rss, _, _ = procStatus(d.cmd.Process.Pid)
		mu.Lock()
		points = append(points, p)
		mu.Unlock()
		fmt.Fprintf(os.Stderr, "soak %v: %d accepted, %d runs, %.1f MB db + %.1f MB wal, RSS %.1f MB\n",
			p.at, p.accepted, p.runs, mb(p.db), mb(p.wal), float64(p.rss)/1024)
		return p
	}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(sampleEvery):
				take()
			}
		}
	}()

	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for accepted.Load() < total {
				n := sent.Add(1)
				path := "/hooks/noop"
				if n%every == 0 {
					path = "/hooks/echo"
				}
				resp, err := client.Post("http://"+d.addr+path, "application/json", strings.NewReader(`{}`))
				if err != nil {
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				} else {
					refused.Add(1) // the backlog is full: the daemon sheds load
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	pushed := time.Since(start)
	// Drain, then let retention catch up with the last runs.
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(time.Second) {
		var n int64
		db.QueryRow("SELECT count(*) FROM runs WHERE state IN ('queued', 'running')").Scan(&n)
		if n == 0 || time.Now().After(deadline) {
			break
		}
	}
	drained := time.Since(start)
	time.Sleep(90 * time.Second)
	close(stopSampling)
	<-sampled
	last := take()

	// The longest batch of retention, from the daemon's log.
	logFile.Sync()
	maxBatch, passes, err := retentionLog(logPath)
	if err != nil {
		return err
	}

	fmt.Printf("\nsoak: %d runs through `routines serve` (1 in %d a run step with a line and an artifact), retention max_age 1m, %d clients\n", total, every, clients)
	fmt.Printf("pushed in %.0f s (%.0f runs/s accepted), drained at %.0f s; %d refused with 429 (backlog full), %d errors\n",
		pushed.Seconds(), float64(total)/pushed.Seconds(), drained.Seconds(), refused.Load(), errs.Load())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time\taccepted\truns in store\tlog lines\trun folders\tdb\twal\tdb + wal\tRSS\t")
	step := max(1, len(points)/24) // about 24 rows
	for i, p := range points {
		if i%step != 0 && i != len(points)-1 {
			continue
		}
		fmt.Fprintf(tw, "%v\t%d\t%d\t%d\t%d\t%.1f MB\t%.1f MB\t%.1f MB\t%.1f MB\t\n", p.at, p.accepted, p.runs, p.lines, p.folders,
			mb(p.db), mb(p.wal), mb(p.db+p.wal), float64(p.rss)/1024)
	}
	tw.Flush()
	// Bounded: the second half of the soak is no bigger than the first.
	var firstSize, secondSize, firstRSS, secondRSS int64
	for _, p := range points {
		if p.accepted <= total/2 {
			firstSize, firstRSS = max(firstSize, p.db+p.wal), max(firstRSS, p.rss)
		} else {
			secondSize, secondRSS = max(secondSize, p.db+p.wal), max(secondRSS, p.rss)
		}
	}
	fmt.Printf("largest db + wal: %.1f MB in the first half, %.1f MB in the second; at the end %.1f MB\n", mb(firstSize), mb(secondSize), mb(last.db+last.wal))
	fmt.Printf("largest RSS: %.1f MB in the first half, %.1f MB in the second; at the end %.1f MB\n", float64(firstRSS)/1024, float64(secondRSS)/1024, float64(last.rss)/1024)
	fmt.Printf("retention: %d passes that pruned, longest batch %v\n", passes, maxBatch)
	// The store's size follows the runs retention keeps (the rate times
	// the window), not the runs pushed: per run kept, it must not grow
	// from the first half of the push to the second, whatever the rate
	// did; nor may the daemon's memory.
	var pushing []point
	for _, p := range points {
		if p.at <= pushed && p.runs >= 1000 {
			pushing = append(pushing, p)
		}
	}
	if len(pushing) < 4 {
		fmt.Printf("bounded: %d samples while pushing, too few to judge: push more runs (-soak-runs)\n", len(pushing))
		return nil
	}
	var perRun, rss [2]float64
	for i, p := range pushing {
		half := i * 2 / len(pushing)
		perRun[half] = max(perRun[half], float64(p.db+p.wal)/float64(p.runs))
		rss[half] = max(rss[half], float64(p.rss))
	}
	fmt.Printf("largest db + wal per run kept while pushing: %.0f bytes in the first half, %.0f in the second\n", perRun[0], perRun[1])
	bounded := perRun[1] <= perRun[0]*1.2 && rss[1] <= rss[0]*1.2
	fmt.Printf("bounded (per run kept and RSS, second half ≤ 1.2 × first half): %v\n", bounded)
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }

var maxBatchField = regexp.MustCompile(`retention: pruned.*max_batch=(\S+)`)

// retentionLog reads the daemon's log for its passes of retention and
// their longest batch.
func retentionLog(path string) (time.Duration, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var longest time.Duration
	passes := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := maxBatchField.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if d, err := time.ParseDuration(m[1]); err == nil {
			passes++
			longest = max(longest, d)
		}
	}
	return longest, passes, sc.Err()
}
