//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/pgtest"
)

// The remote workloads run real `routines server` and `routines worker`
// processes (the built binary) on a throwaway PostgreSQL server that
// internal/pgtest starts once for all of them, each workload on a
// database of its own. The server is pgtest's: fsync, synchronous_commit
// and full_page_writes off (a crash may lose the last commits; nothing
// else changes) unless -durable, plus pg_stat_statements to tell the
// statements apart.
const (
	noopRoutine = "name: noop\nsteps:\n  - id: get\n    state: { get: x }\n"
	trueRoutine = "name: truerun\nsteps:\n  - id: t\n    run: \"true\"\n"
)

// durable, when set, runs the remote workloads' PostgreSQL as a server
// that survives a crash would run (-durable).
var durable *bool

// remoteWorkloads are the names -only takes for remote mode; "remote" runs
// them all.
var remoteWorkloads = []string{"remote-throughput", "remote-latency", "remote-cold", "remote-idle"}

// pgEnv is the PostgreSQL server of the remote workloads.
type pgEnv struct {
	srv  *pgtest.Server
	stop func()
	// floor is a database of the bench's own: the floors' tables, and the
	// connection that reads the statistics of the others.
	floor *pgx.Conn
	// postmaster is the server's pid: its CPU time and its children's.
	postmaster int
}

func startPG(ctx context.Context) (*pgEnv, error) {
	settings := []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track_utility=on"}
	if *durable {
		settings = append(settings, "fsync=on", "synchronous_commit=on", "full_page_writes=on")
	}
	srv, stop, err := pgtest.Start(settings...)
	if err != nil {
		return nil, err
	}
	e := &pgEnv{srv: srv, stop: stop}
	url, err := srv.NewDatabase(ctx)
	if err == nil {
		e.floor, err = pgx.Connect(ctx, url)
	}
	if err != nil {
		stop()
		return nil, err
	}
	var backend int
	if err := e.floor.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		e.close()
		return nil, err
	}
	if e.postmaster, err = parentPID(backend); err != nil {
		e.close()
		return nil, err
	}
	if _, err := e.floor.Exec(ctx, `CREATE EXTENSION pg_stat_statements`); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *pgEnv) close() {
	e.floor.Close(context.Background())
	e.stop()
}

// cpu is the CPU time the server has used so far: the postmaster's, its
// children's that ended (reaped: cutime, cstime) and its live children's.
func (e *pgEnv) cpu() time.Duration {
	self, reaped, _ := procCPU(e.postmaster)
	total := self + reaped
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid, err := parentPID(pid); err == nil && ppid == e.postmaster {
			c, _, _ := procCPU(pid)
			total += c
		}
	}
	return total
}

// statFields returns the fields of /proc/pid/stat after the command's
// name, numbered from 3 (state) as proc(5) numbers them, at index 0.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return strings.Fields(s[i+1:]), nil
}

func parentPID(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 2 {
		return 0, fmt.Errorf("ppid of %d: %v", pid, err)
	}
	return strconv.Atoi(f[1])
}

// clockTick is USER_HZ, the unit of the times in /proc/pid/stat: 100 on
// every Linux that Go runs on.
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time (user + system) of process pid, and that
// of its children that ended.
func procCPU(pid int) (self, reaped time.Duration, err error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 15 {
		return 0, 0, fmt.Errorf("cpu of %d: %v", pid, err)
	}
	n := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i-3], 10, 64)
		return time.Duration(v) * clockTick
	}
	return n(14) + n(15), n(16) + n(17), nil
}

// remoteProc is a `routines server` or `routines worker` started by the
// harness; its stderr (the log) goes to a file beside its directories.
type remoteProc struct {
	cmd  *exec.Cmd
	line string // the line it printed once up
	log  string
}

// startRemote starts `routines role --db url args...` with a cache and a
// work directory of its own under dir, and waits until it says it is up.
func startRemote(bin, dir, role, url string, args ...string) (*remoteProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, role+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args = append([]string{role, "--db", url, "--cache-dir", filepath.Join(dir, "cache"), "--work-dir", filepath.Join(dir, "work")}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &remoteProc{cmd: cmd, log: logPath}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), " up (") {
				select {
				case up <- sc.Text():
				default:
				}
			}
		}
		close(up)
	}()
	select {
	case line, ok := <-up:
		if ok {
			p.line = line
			return p, nil
		}
	case <-time.After(30 * time.Second):
	}
	p.stop()
	data, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not start: %s", role, data)
}

// addr is the server's base URL, from the line it printed once up.
func (p *remoteProc) addr() string {
	_, rest, _ := strings.Cut(p.line, "http://")
	host, _, _ := strings.Cut(rest, " ")
	return "http://" + host
}

func (p *remoteProc) cpu() time.Duration {
	c, _, _ := procCPU(p.cmd.Process.Pid)
	return c
}

func (p *remoteProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// deployment is a database with a server on it, its routines pushed, and
// workers.
type deployment struct {
	bin, dir, url string
	db            *pgx.Conn
	server        *remoteProc
	workers       []*remoteProc
}

// newDeployment creates a database, starts a server on it with
// serverArgs, and pushes the routines (name → routine.yaml text).
func newDeployment(ctx context.Context, e *pgEnv, bin, dir string, routines map[string]string, serverArgs ...string) (*deployment, error) {
	url, err := e.srv.NewDatabase(ctx)
	if err != nil {
		return nil, err
	}
	d := &deployment{bin: bin, dir: dir, url: url}
	if d.server, err = startRemote(bin, filepath.Join(dir, "server"), "server", url, append([]string{"--addr", "127.0.0.1:0"}, serverArgs...)...); err != nil {
		return nil, err
	}
	if d.db, err = pgx.Connect(ctx, url); err != nil {
		d.close()
		return nil, err
	}
	for name, text := range routines {
		if err := d.push(name, map[string][]byte{"routine.yaml": []byte(text)}); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

// push writes the files of a routine's directory and pushes it.
func (d *deployment) push(name string, files map[string][]byte) error {
	rdir := filepath.Join(d.dir, "routines", name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(rdir, f), data, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(d.bin, "push", rdir, "--server", d.server.addr())
	cmd.Env = append(os.Environ(), "HOME="+d.dir) // no profile of the user's
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("push %s: %v: %s", name, err, out)
	}
	return nil
}

// startWorkers starts n workers at once, each with args, and waits until
// every one is up.
func (d *deployment) startWorkers(n int, args ...string) error {
	type result struct {
		p   *remoteProc
		err error
	}
	ch := make(chan result, n)
	base := len(d.workers)
	for i := range n {
		go func() {
			p, err := startRemote(d.bin, filepath.Join(d.dir, fmt.Sprint("worker", base+i)), "worker", d.url, args...)
			ch <- result{p, err}
		}()
	}
	var first error
	for range n {
		r := <-ch
		if r.err != nil {
			first = r.err
			continue
		}
		d.workers = append(d.workers, r.p)
	}
	return first
}

func (d *deployment) stopWorkers() {
	for _, w := range d.workers {
		go w.stop()
	}
	for _, w := range d.workers {
		w.stop()
	}
	d.workers = nil
}

func (d *deployment) close() {
	d.stopWorkers()
	if d.server != nil {
		d.server.stop()
	}
	if d.db != nil {
		d.db.Close(context.Background())
	}
}

// enqueue queues n runs of a routine through the server's API from 8
// clients and returns how fast they were accepted.
func (d *deployment) enqueue(name string, n int) (float64, error) {
	res := generate(d.server.addr()+"/v1/routines/"+name+"/runs", `{}`, 8, 5*time.Minute, int64(n), http.StatusAccepted)
	if res.accepted != n {
		return 0, fmt.Errorf("enqueue %s: %d of %d accepted (%d refused, %d errors: %s)", name, res.accepted, n, res.refused, res.errs, res.firstErr)
	}
	return float64(n) / res.elapsed.Seconds(), nil
}

// drain waits until no run is queued or running, looking every 100 ms
// with a statement that stops at the first such run.
func (d *deployment) drain(ctx context.Context, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		var busy bool
		if err := d.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE state IN ('queued', 'running'))`).Scan(&busy); err != nil {
			return err
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("runs still queued or running after %s (logs in %s)", limit, d.dir)
		}
	}
}

// workersCPU is the CPU time the workers have used so far.
func (d *deployment) workersCPU() time.Duration {
	var t time.Duration
	for _, w := range d.workers {
		t += w.cpu()
	}
	return t
}

// remoteBench runs the remote workloads -only names (all of them for ""
// or "remote").
func remoteBench(bin, tmp string, reps int) error {
	ctx := context.Background()
	e, err := startPG(ctx)
	if err != nil {
		fmt.Printf("\nremote workloads skipped: %v\n", err)
		return nil
	}
	defer e.close()
	for _, w := range []struct {
		name string
		run  func(context.Context, *pgEnv, string, string, int) error
	}{
		{"remote-throughput", remoteThroughput},
		{"remote-latency", remoteLatency},
		{"remote-cold", remoteCold},
		{"remote-idle", remoteIdle},
	} {
		if *only != "" && *only != "remote" && *only != w.name {
			continue
		}
		if err := w.run(ctx, e, bin, filepath.Join(tmp, w.name), reps); err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
	}
	return nil
}

// loadavg is the first field of /proc/loadavg: the machine's load over
// the last minute, printed beside each figure since other work shares it.
func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
