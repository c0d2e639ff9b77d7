//go:build linux

package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
)

// The daemon under abuse: tests that try to starve `routines serve` of
// time, connections, descriptors and memory, and check which limit held.

// TestMain lets a test start this binary as a daemon process of its own
// (serveProcess), whose memory and descriptors it can measure apart.
func TestMain(m *testing.M) {
	if os.Getenv("ROUTINES_TEST_SERVE_CHILD") != "1" {
		os.Exit(m.Run())
	}
	if n, err := strconv.ParseUint(os.Getenv("ROUTINES_TEST_NOFILE"), 10, 64); err == nil {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			os.Exit(3)
		}
	}
	if n, err := strconv.ParseUint(os.Getenv("ROUTINES_TEST_NOFILE_AFTER_START"), 10, 64); err == nil {
		// Lower the limit once the daemon is up, below the connection cap
		// it chose: as if something else took the descriptors.
		go func() {
			for {
				if _, err := os.Stat(filepath.Join(os.Args[2], ".routines", "serve.json")); err == nil {
					syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: 1024})
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	deps := cli.Deps{Kinds: stepkind.NewRegistry(steps.RunKind{}), Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(cli.Run(ctx, deps, os.Args[1:]))
}

// serveProcess is `routines serve` in a process of its own.
type serveProcess struct {
	url    string
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
}

// logs returns what the daemon wrote to stderr so far.
func (p *serveProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startServeProcess starts the daemon on dir as a child process, with env
// added to its environment: ROUTINES_TEST_NOFILE=N sets its descriptor
// limit, ROUTINES_TEST_NOFILE_AFTER_START=N lowers it once it is up.
func startServeProcess(t *testing.T, dir string, env []string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", dir, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "ROUTINES_TEST_SERVE_CHILD=1"), env...)
	p := &serveProcess{cmd: cmd}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.Write(b) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(filepath.Join(dir, ".routines", "serve.json"))
		var v struct{ Addr string }
		if err == nil && json.Unmarshal(data, &v) == nil && v.Addr != "" {
			p.url = "http://" + v.Addr
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve did not start: %s", p.logs())
	return nil
}

// peakRSSKB is the daemon's peak resident memory (VmHWM).
func (p *serveProcess) peakRSSKB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// dribble dials the daemon, sends head, then one byte of body every
// 100 ms, and returns how long until the daemon ended the connection.
func dribble(t *testing.T, url, head string, limit time.Duration) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(limit))
	_, err = io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("no read timeout cut the connection: it was still open after %s", limit)
	}
	return time.Since(start)
}

func TestEscapeServeSlowBody(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	d := startServe(t, dir, "--read-timeout", "1s", "--read-header-timeout", "500ms")
	body := dribble(t, d.url, "POST /v1/routines/ping/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", 8*time.Second)
	if body > 3*time.Second {
		t.Errorf("the read timeout (1s) cut a body sent a byte per 100 ms only after %s", body)
	}
	head := dribble(t, d.url, "POST /v1/routines/ping/runs HTTP/1.1\r\nHost: x\r\nX-Slow: ", 8*time.Second)
	if head > 2*time.Second {
		t.Errorf("the read-header timeout (500ms) cut headers sent a byte per 100 ms only after %s", head)
	}
	t.Logf("slow body cut after %s, slow headers after %s", body.Round(time.Millisecond), head.Round(time.Millisecond))
}

// A request that waits for its run outlives the read and write timeouts.
func TestServeWaitOutlivesTimeouts(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: slow\nsteps:\n  - id: slow\n    run: sleep 1.5\n")
	d := startServe(t, dir, "--read-timeout", "500ms", "--write-timeout", "500ms")
	code, body := post(t, d.url+"/v1/routines/slow/runs?wait=20s", `{}`, nil)
	if code != http.StatusOK || body["state"] != string(routine.StateSucceeded) {
		t.Fatalf("?wait=20s with 500ms timeouts: %d %v", code, body)
	}
}

// answer sends one request on a connection of its own and returns its
// status and how long it took.
// answer gets url under a flood. A connection the daemon closes before
// answering (it was still idle, for the cap, when newer ones came) is
// tried again, as any client would, twice at most.
func answer(t *testing.T, url string) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	status, err := tryAnswer(url)
	for try := 1; err != nil && try < 3; try++ {
		status, err = tryAnswer(url)
	}
	if err != nil {
		t.Fatalf("no answer under a connection flood after %s: %v", time.Since(start), err)
	}
	return status, time.Since(start)
}

func tryAnswer(url string) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestEscapeServeConnectionFlood(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: slow\nsteps:\n  - id: slow\n    run: sleep 3; echo done\n")
	// 1024 descriptors: the cap asked for (5000) is lowered to 512, so the
	// flood cannot take the descriptors the accepted run needs.
	d := startServeProcess(t, dir, []string{"ROUTINES_TEST_NOFILE=1024"}, "--max-conns", "5000", "--read-timeout", "2s")
	code, body := post(t, d.url+"/v1/routines/slow/runs", `{}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("create run: %d %v", code, body)
	}
	id := body["run_id"].(string)
	addr := strings.TrimPrefix(d.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(n int, send string) {
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if send != "" {
				c.Write([]byte(send))
			}
			conns = append(conns, c)
		}
	}
	// Idle connections, 4 times the cap: each newcomer closes the oldest.
	start := time.Now()
	dial(2000, "")
	flood := time.Since(start)
	status, took := answer(t, d.url+"/v1/runs/"+id)
	if status != http.StatusOK || took > 2*time.Second {
		t.Errorf("the connection cap did not keep the daemon answering 2000 idle connections: %d after %s", status, took)
	}
	t.Logf("2000 idle connections opened in %s; a request then answered %d in %s", flood.Round(time.Millisecond), status, took.Round(time.Millisecond))
	// Connections in a request (headers read, the body awaited) are not
	// closed for others: past the cap, newcomers get a fast 503 until the
	// read timeout frees them. (Connections still sending headers count as
	// idle: the flood above covers them.)
	//
	// A connection whose headers the daemon has not read yet counts as
	// idle, so newcomers of the same flood close some of their elders: more
	// are sent, up to 1,000, until every connection the cap allows is in a
	// request (well within the 2 s read timeout).
	const busy = "POST /v1/routines/slow/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
	dial(600, busy)
	sent := 600
	for until := time.Now().Add(1200 * time.Millisecond); ; sent += 50 {
		time.Sleep(50 * time.Millisecond) // the daemon reads their headers
		status, took = answer(t, d.url+"/v1/runs/"+id)
		if status == http.StatusServiceUnavailable || sent >= 1000 || time.Now().After(until) {
			break
		}
		dial(50, busy)
	}
	// A 503 proves the newcomer was turned away rather than queued until
	// the read timeout freed a slot (that would answer 200); its time
	// only bounds how slow a loaded machine may be (the whole suite runs
	// beside the multi-process proof of internal/fleettest).
	if status != http.StatusServiceUnavailable || took > 5*time.Second {
		t.Errorf("past the cap with every connection busy: %d after %s, want a 503 without a wait", status, took)
	}
	t.Logf("%d connections sent mid-request (cap 512): a request answered %d in %s", sent, status, took.Round(time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	for status != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		status, _ = tryAnswer(d.url + "/v1/runs/" + id)
	}
	if status != http.StatusOK {
		t.Fatalf("the daemon did not recover after the read timeout: %d", status)
	}
	// The run accepted before the flood ran through it.
	for time.Now().Before(deadline) {
		_, body := get(t, d.url+"/v1/runs/"+id)
		if s, _ := body["state"].(string); routine.State(s).Final() {
			if s != string(routine.StateSucceeded) {
				t.Fatalf("the run accepted before the flood ended %s: %v", s, body["error"])
			}
			if !strings.Contains(d.logs(), "--max-conns lowered") {
				t.Errorf("the lowered cap was not logged: %s", d.logs())
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the run accepted before the flood did not finish")
}

func TestEscapeServeOutOfDescriptors(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	// The cap is 512 (half of 1024); then the limit drops to 200.
	d := startServeProcess(t, dir, []string{"ROUTINES_TEST_NOFILE=1024", "ROUTINES_TEST_NOFILE_AFTER_START=200"}, "--idle-timeout", "2s")
	addr := strings.TrimPrefix(d.url, "http://")
	var conns []net.Conn
	for range 600 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	status, took := answer(t, d.url+"/v1/runs/none")
	if took > 2*time.Second || status != http.StatusServiceUnavailable && status != http.StatusNotFound {
		t.Errorf("out of descriptors: %d after %s, want a fast 503 (or the answer)", status, took)
	}
	t.Logf("600 connections, 200 descriptors: a request answered %d in %s", status, took.Round(time.Millisecond))
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for status != http.StatusNotFound && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		status, _ = tryAnswer(d.url + "/v1/runs/none")
	}
	if status != http.StatusNotFound {
		t.Fatalf("the daemon did not recover once the connections closed: %d", status)
	}
	code, body := post(t, d.url+"/v1/routines/ping/runs?wait=10s", `{}`, nil)
	if code != http.StatusOK || body["state"] != string(routine.StateSucceeded) {
		t.Fatalf("a run after recovery: %d %v", code, body)
	}
	if !strings.Contains(d.logs(), "out of file descriptors") {
		t.Errorf("the shortage was not logged: %s", d.logs())
	}
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func TestEscapeServeBodiesInFlight(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\ninputs: {x: {}}\nsteps:\n  - id: ping\n    run: echo pong\n")
	d := startServeProcess(t, dir, nil, "--max-body-in-flight", "8")
	before := d.peakRSSKB(t)
	payload := `{"x":"` + strings.Repeat("a", 1<<20-100) + `"}`
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 300}}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			resp, err := client.Post(d.url+"/v1/routines/ping/runs", "application/json", strings.NewReader(payload))
			if err != nil {
				// Refused before the client finished sending: the daemon
				// answered 503 and closed without reading the body.
				mu.Lock()
				counts[0]++
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusServiceUnavailable && (resp.Header.Get("Retry-After") == "" || !json.Valid(data)) {
				t.Errorf("503 without Retry-After or JSON: %v %q", resp.Header, data)
			}
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	peak := d.peakRSSKB(t)
	t.Logf("300 concurrent 1 MiB bodies, 8 MiB in flight at most: answers %v (0: reset while sending); daemon peak RSS %d MiB (%d MiB before)", counts, peak>>10, before>>10)
	if counts[http.StatusServiceUnavailable] == 0 || counts[0] > counts[http.StatusServiceUnavailable] {
		t.Errorf("the body budget refused none of 300 concurrent 1 MiB bodies: %v", counts)
	}
	for code, n := range counts {
		if code != 0 && code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d", n, code)
		}
	}
	// Without the budget the peak grew by 680 MiB (715 MiB); with it, by 53
	// (157 under the race detector).
	if peak-before > 256<<10 {
		t.Errorf("the body budget did not bound the daemon's memory: peak RSS %d MiB, %d MiB before", peak>>10, before>>10)
	}
}

func TestServeAmbiguousPrefix(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: ping\nsteps:\n  - id: ping\n    run: echo pong\n")
	st := openStore(t, dir)
	later := time.Now().Add(time.Hour)
	ids := []string{"01JAMB0000000000000000000A", "01JAMB0000000000000000000B"}
	for _, id := range ids {
		if _, err := st.RunCreate(context.Background(), &store.RunCreateParams{ID: id, Routine: "ping", QueuedAt: time.Now(), NotBefore: &later}); err != nil {
			t.Fatal(err)
		}
	}
	d := startServe(t, dir)
	code, body := get(t, d.url+"/v1/runs/01JAMB")
	msg, _ := body["error"].(string)
	if code != http.StatusBadRequest || !strings.Contains(msg, ids[0]) || !strings.Contains(msg, ids[1]) {
		t.Fatalf("ambiguous prefix: %d %q, want 400 naming both runs", code, msg)
	}
	r := routines(t, dir, "show", "01jamb")
	if r.code == 0 || !strings.Contains(r.stderr, ids[0]) || !strings.Contains(r.stderr, ids[1]) {
		t.Fatalf("show of an ambiguous prefix: %+v", r)
	}
	// A whole id still finds its run.
	if code, _ := get(t, d.url+"/v1/runs/"+ids[0]); code != http.StatusOK {
		t.Fatalf("exact id: %d", code)
	}
}
