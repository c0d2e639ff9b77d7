//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

// daemon is a running `routines serve` started by the harness.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

// startDaemon writes the routines (name → routine.yaml text) under dir and
// starts `routines serve dir --addr 127.0.0.1:0 extra...`, waiting for
// serve.json.
func startDaemon(bin, dir string, routines map[string]string, extra ...string) (*daemon, error) {
	for name, text := range routines {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name, "routine.yaml"), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	args := append([]string{"serve", dir, "--addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, dir: dir}
	for deadline := time.Now().Add(20 * time.Second); d.addr == ""; time.Sleep(5 * time.Millisecond) {
		if data, err := os.ReadFile(filepath.Join(dir, ".routines", "serve.json")); err == nil {
			var v struct{ Addr string }
			if json.Unmarshal(data, &v) == nil {
				d.addr = v.Addr
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("serve did not start")
		}
	}
	return d, nil
}

func (d *daemon) stop() { stopProcess(d.cmd, 10*time.Second) }

// stopProcess sends cmd SIGTERM and waits for it to exit, killing it
// after grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// procStatus reads VmRSS and VmHWM (kB) of pid from /proc.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, sc.Err()
}

// load is the result of one load generation.
type load struct {
	accepted, refused int
	errs              int
	elapsed           time.Duration
	lat               []time.Duration // of the accepted requests
	firstErr          string
}

// generate posts body to url from clients goroutines for at most d and at
// most total requests, counting the answers with status want.
func generate(url, body string, clients int, d time.Duration, total int64, want int) load {
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var sent atomic.Int64
	var mu sync.Mutex
	var res load
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var acc, ref, errs int
			var firstErr string
			for time.Now().Before(end) && sent.Add(1) <= total {
				t := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == want {
					acc++
					lat = append(lat, time.Since(t))
				} else {
					ref++
					if firstErr == "" {
						firstErr = resp.Status
					}
				}
			}
			mu.Lock()
			res.accepted += acc
			res.refused += ref
			res.errs += errs
			res.lat = append(res.lat, lat...)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// countRuns counts the project's runs in the given states with the binary's
// `runs` command.
func countRuns(bin, dir, states string) (int, error) {
	out, err := exec.Command(bin, "runs", "--project", dir, "--state", states, "--limit", "10000000", "-o", "json").Output()
	if err != nil {
		return 0, fmt.Errorf("runs --state %s: %v", states, err)
	}
	var runs []json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(out), &runs); err != nil {
		return 0, fmt.Errorf("runs -o json: %v: %.200s", err, out)
	}
	return len(runs), nil
}

const finalStates = "succeeded,failed,dead,cancelled"

// throughputBench drives webhook POSTs at the daemon from a Go load
// generator on loopback and waits for every accepted run to be final.
// Floor, in the same run: the same generator against a Go handler that
// answers 202 at once.
func throughputBench(bin, tmp string) error {
	const clients, dur, total = 32, 5 * time.Second, 100000
	dir := filepath.Join(tmp, "throughput")
	d, err := startDaemon(bin, dir, map[string]string{
		"noop": "name: noop\ntriggers:\n  - webhook: { path: /noop }\nsteps:\n  - id: get\n    state: { get: x }\n",
	}, "--sync", *syncMode)
	if err != nil {
		return err
	}
	defer d.stop()
	url := "http://" + d.addr + "/hooks/noop"
	// Warm-up: connections, the store, the statements.
	if w := generate(url, `{}`, 4, time.Second, 200, http.StatusAccepted); w.accepted == 0 {
		return fmt.Errorf("throughput warm-up: nothing accepted: %s", w.firstErr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, err := countRuns(bin, dir, "queued,running")
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up runs did not end")
		}
	}
	before, err := countRuns(bin, dir, finalStates)
	if err != nil {
		return err
	}

	syncs := countFsyncs(d.cmd.Process.Pid)
	start := time.Now()
	res := generate(url, `{}`, clients, dur, total, http.StatusAccepted)
	// Wait until nothing is queued or running, then count the final runs.
	var drained time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		n, err := countRuns(bin, dir, "queued,running")
		if err != nil {
			return err
		}
		if n == 0 {
			drained = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("throughput: %d runs still queued or running after 5 min", n)
		}
	}
	after, err := countRuns(bin, dir, finalStates)
	if err != nil {
		return err
	}
	succeeded, err := countRuns(bin, dir, "succeeded")
	if err != nil {
		return err
	}
	completed := after - before
	rss, hwm, _ := procStatus(d.cmd.Process.Pid)
	fsyncs, fsyncErr := syncs()

	// The floor: the same generator against a handler answering 202.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	floorSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"run_id":"00000000000000000000000000"}`))
	})}
	go floorSrv.Serve(ln)
	defer floorSrv.Close()
	floor := generate("http://"+ln.Addr().String()+"/hooks/noop", `{}`, clients, dur, total, http.StatusAccepted)

	acceptRate := float64(res.accepted) / res.elapsed.Seconds()
	doneRate := float64(completed) / drained.Seconds()
	lost := res.accepted - completed
	met := doneRate >= 3000 && acceptRate >= 3000 && lost == 0
	fmt.Printf("\nthroughput: webhook POST /hooks/noop (one `state: {get: x}` step), %d clients, %s or %d requests, default workers, --sync %s\n", clients, dur, total, *syncMode)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tours\tfloor (Go handler answering 202)\ttarget\tmet\t")
	fmt.Fprintf(tw, "accepted (202)\t%d in %.2f s\t%d in %.2f s\t\t\t\n", res.accepted, res.elapsed.Seconds(), floor.accepted, floor.elapsed.Seconds())
	fmt.Fprintf(tw, "refused / errors\t%d / %d\t%d / %d\t\t\t\n", res.refused, res.errs, floor.refused, floor.errs)
	fmt.Fprintf(tw, "accepted runs/s\t%.0f\t%.0f\t≥ 3000\t%v\t\n", acceptRate, float64(floor.accepted)/floor.elapsed.Seconds(), acceptRate >= 3000)
	fmt.Fprintf(tw, "completed runs/s (first POST → all final)\t%.0f (%d final in %.2f s, %d succeeded)\t—\t≥ 3000\t%v\t\n", doneRate, completed, drained.Seconds(), succeeded-before, doneRate >= 3000)
	fmt.Fprintf(tw, "accept latency p50 / p99\t%s / %s\t%s / %s\t\t\t\n", ms(pct(res.lat, 50)), ms(pct(res.lat, 99)), ms(pct(floor.lat, 50)), ms(pct(floor.lat, 99)))
	fmt.Fprintf(tw, "lost (accepted − completed)\t%d\t—\t0\t%v\t\n", lost, lost == 0)
	fmt.Fprintf(tw, "daemon RSS / peak after the load\t%.1f / %.1f MB\t—\t\t\t\n", float64(rss)/1024, float64(hwm)/1024)
	if fsyncErr == nil {
		fmt.Fprintf(tw, "fsyncs of the daemon per completed run\t%.3f (%d)\t—\t\t\t\n", float64(fsyncs)/float64(max(completed, 1)), fsyncs)
	}
	tw.Flush()
	if fsyncErr != nil {
		fmt.Println("fsyncs not counted:", fsyncErr)
	}
	if res.firstErr != "" {
		fmt.Println("first refusal or error:", res.firstErr)
	}
	if !met {
		fmt.Println("the throughput target was not met")
	}
	return nil
}

// countFsyncs starts counting the fsync and fdatasync calls of the
// process pid with perf (its syscall tracepoints); the function returned
// stops and returns the count, or why none could be taken.
func countFsyncs(pid int) func() (int64, error) {
	cmd := exec.Command("perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
		"-p", strconv.Itoa(pid))
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return func() (int64, error) { return 0, err }
	}
	time.Sleep(200 * time.Millisecond) // perf attaches
	return func() (int64, error) {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		// CSV lines: count,unit,event,…
		var n int64
		found := 0
		for line := range strings.SplitSeq(out.String(), "\n") {
			f := strings.Split(line, ",")
			if len(f) < 3 || !strings.HasPrefix(f[2], "syscalls:sys_enter_f") {
				continue
			}
			c, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("perf: %q", line)
			}
			n += c
			found++
		}
		if found != 2 {
			return 0, fmt.Errorf("perf stat said: %s", strings.TrimSpace(out.String()))
		}
		return n, nil
	}
}

// memoryBench reads the daemon's resident memory: idle with 100 cron
// routines, and with 100k runs queued behind a routine of concurrency 1.
// Floor, in the same run: the idle daemon with one routine.
func memoryBench(bin, tmp string) error {
	type row struct {
		name     string
		rss, hwm int64
		target   int64 // kB; 0: none
		note     string
	}
	var rows []row
	idle := func(name string, n int) error {
		rs := map[string]string{}
		for i := range n {
			rs[fmt.Sprintf("r%03d", i)] = fmt.Sprintf("name: r%03d\ntriggers:\n  - cron: \"0 0 1 1 *\"\nsteps:\n  - id: echo\n    run: echo hello %d\n", i, i)
		}
		d, err := startDaemon(bin, filepath.Join(tmp, name), rs)
		if err != nil {
			return err
		}
		defer d.stop()
		time.Sleep(3 * time.Second) // let start-up settle
		rss, hwm, err := procStatus(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		r := row{name: fmt.Sprintf("idle, %d routine(s)", n), rss: rss, hwm: hwm}
		if n == 100 {
			r.target = 60 << 10
		} else {
			r.note = "floor"
		}
		rows = append(rows, r)
		return nil
	}
	if err := idle("mem-idle1", 1); err != nil {
		return err
	}
	if err := idle("mem-idle100", 100); err != nil {
		return err
	}

	// 100k queued: one routine of concurrency 1 whose step sleeps.
	const queued = 100000
	dir := filepath.Join(tmp, "mem-queued")
	d, err := startDaemon(bin, dir, map[string]string{
		"q": "name: q\nconcurrency: { max: 1 }\nsteps:\n  - id: wait\n    run: sleep 600\n",
	}, "--max-queued", "1000000")
	if err != nil {
		return err
	}
	defer d.stop()
	before, _, err := procStatus(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	start := time.Now()
	res := generate("http://"+d.addr+"/v1/routines/q/runs", `{}`, 32, 10*time.Minute, queued, http.StatusAccepted)
	if res.accepted != queued {
		return fmt.Errorf("memory: %d of %d runs accepted (%d refused, %d errors: %s)", res.accepted, queued, res.refused, res.errs, res.firstErr)
	}
	enq := time.Since(start)
	rssLoaded, hwmLoaded, _ := procStatus(d.cmd.Process.Pid)
	time.Sleep(3 * time.Second)
	rssSettled, hwmSettled, _ := procStatus(d.cmd.Process.Pid)
	n, err := countRuns(bin, dir, "queued")
	if err != nil {
		return err
	}
	rows = append(rows,
		row{name: "queue: before enqueueing", rss: before, hwm: before},
		row{name: fmt.Sprintf("queue: right after %d accepted", queued), rss: rssLoaded, hwm: hwmLoaded, target: 200 << 10,
			note: fmt.Sprintf("enqueued in %.1f s (%.0f/s), p99 %s", enq.Seconds(), float64(queued)/enq.Seconds(), ms(pct(res.lat, 99)))},
		row{name: "queue: 3 s later", rss: rssSettled, hwm: hwmSettled, target: 200 << 10, note: fmt.Sprintf("%d queued in the store", n)},
	)

	fmt.Printf("\nmemory of `routines serve` (/proc/<pid>/status; floor: the idle daemon with 1 routine)\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "daemon\tVmRSS\tVmHWM (peak)\ttarget\tmet\tnote\t")
	allMet := true
	for _, r := range rows {
		target, met := "", ""
		if r.target > 0 {
			target = fmt.Sprintf("RSS < %d MB", r.target>>10)
			ok := r.rss < r.target && r.hwm < r.target
			met = strconv.FormatBool(ok)
			allMet = allMet && ok
		}
		fmt.Fprintf(tw, "%s\t%.1f MB\t%.1f MB\t%s\t%s\t%s\t\n", r.name, float64(r.rss)/1024, float64(r.hwm)/1024, target, met, r.note)
	}
	tw.Flush()
	if !allMet {
		fmt.Println("a memory target was not met")
	}
	return nil
}
