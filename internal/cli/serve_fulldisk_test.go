//go:build linux

package cli_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/disktest"
	"github.com/routines-dev/routines/internal/routine"
)

// hookAnswer is what the daemon answered one request of the test.
type hookAnswer struct {
	phase      string
	code       int
	retryAfter string
	err        string // the JSON error
	runID      string
}

// flow posts webhooks to the daemon from a few clients at once until
// stopped, and keeps every answer, tagged with the phase of the test it
// came in.
type flow struct {
	url     string
	client  *http.Client
	mu      sync.Mutex
	phase   string
	answers []hookAnswer
	failed  []error
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startFlow(url string, clients int) *flow {
	f := &flow{url: url, client: &http.Client{Timeout: 30 * time.Second}, phase: "before", stop: make(chan struct{})}
	for c := range clients {
		f.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-f.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				f.post(fmt.Sprintf(`{"client":%d,"n":%d}`, c, n))
			}
		})
	}
	return f
}

// post sends one webhook and keeps the hookAnswer.
func (f *flow) post(body string) {
	a, err := request(f.client, http.MethodPost, f.url+"/hooks/in", body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.failed = append(f.failed, err)
		return
	}
	a.phase = f.phase
	f.answers = append(f.answers, a)
}

func (f *flow) setPhase(p string) {
	f.mu.Lock()
	f.phase = p
	f.mu.Unlock()
}

// count returns how many answers of phase had code.
func (f *flow) count(phase string, code int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.answers {
		if a.phase == phase && a.code == code {
			n++
		}
	}
	return n
}

// request sends one request and reads its hookAnswer.
func request(c *http.Client, method, url, body string) (hookAnswer, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return hookAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return hookAnswer{}, err
	}
	defer resp.Body.Close()
	var v struct {
		Error string `json:"error"`
		RunID string `json:"run_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return hookAnswer{}, fmt.Errorf("%s %s: %d with a body that is not JSON: %v", method, url, resp.StatusCode, err)
	}
	return hookAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), err: v.Error, runID: v.RunID}, nil
}

// waitFor polls the daemon with GET url until it answers code, for up to
// limit, and returns the hookAnswer.
func waitFor(t *testing.T, url string, code int, limit time.Duration) hookAnswer {
	t.Helper()
	var a hookAnswer
	var err error
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if a, err = request(http.DefaultClient, http.MethodGet, url, ""); err == nil && a.code == code {
			return a
		}
	}
	t.Fatalf("GET %s: %+v %v after %s, want %d", url, a, err, limit, code)
	return a
}

// The daemon on a disk that fills up while webhooks flow: it refuses new
// runs with 503 saying why, keeps and finishes the runs it accepted,
// logs the outage once, and takes runs again by itself once space
// returns; the store is intact.
func TestServeDiskFull(t *testing.T) {
	t.Parallel()
	dir := writeRoutine(t, "name: sink\ntriggers:\n  - webhook: { path: /in }\nsteps:\n  - id: work\n    run: sleep 0.3 && echo \"got {{ event.n }}\"\n")
	disk := filepath.Join(dir, ".routines")
	disktest.Mount(t, disk, 4<<20)
	// Runs are in flight when the disk fills, and it stays full longer
	// than their leases.
	d := startServeProcess(t, dir, nil, "--lease", "2s")
	f := startFlow(d.url, 4)
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs())
		}
	}()
	time.Sleep(500 * time.Millisecond)

	f.setPhase("full")
	free := disktest.Fill(t, disk)
	filled := time.Now()
	// The write-ahead log may have room for a few writes yet; past it,
	// webhooks are refused.
	for deadline := time.Now().Add(10 * time.Second); f.count("full", http.StatusServiceUnavailable) < 20; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no 503 for webhooks within 10s of a full disk: %d answered 202", f.count("full", http.StatusAccepted))
		}
	}
	ready := waitFor(t, d.url+"/readyz", http.StatusServiceUnavailable, 5*time.Second)
	if !strings.HasPrefix(ready.err, "the store cannot write: disk full since ") {
		t.Errorf("GET /readyz on a full disk: %+v", ready)
	}
	// The API names the store's file, for its callers hold the token.
	var invoke hookAnswer
	var invoked []string // the runs the API accepted meanwhile
	for range 50 {
		a, err := request(http.DefaultClient, http.MethodPost, d.url+"/v1/routines/sink/runs", `{}`)
		if err != nil {
			t.Fatal(err)
		}
		if a.code != http.StatusAccepted {
			invoke = a
			break
		}
		invoked = append(invoked, a.runID)
	}
	want := "the store cannot write: disk full at " + filepath.Join(disk, "state.db") + "; nothing was recorded: retry later"
	if invoke.code != http.StatusServiceUnavailable || invoke.err != want || invoke.retryAfter != "30" {
		t.Errorf("POST /v1/routines/sink/runs on a full disk: %+v, want 503 %q with Retry-After: 30", invoke, want)
	}
	time.Sleep(2 * time.Second)

	free()
	freed := time.Now()
	f.setPhase("freed")
	waitFor(t, d.url+"/readyz", http.StatusOK, 10*time.Second)
	recovered := time.Since(freed)
	for deadline := time.Now().Add(10 * time.Second); f.count("freed", http.StatusAccepted) < 20; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("webhooks not taken again within 10s of space returning: %d answered 503", f.count("freed", http.StatusServiceUnavailable))
		}
	}
	close(f.stop)
	f.wg.Wait()
	if len(f.failed) > 0 {
		t.Fatalf("%d webhooks got no hookAnswer, the first: %v", len(f.failed), f.failed[0])
	}

	// Every hookAnswer is a 202 for a run, or a 503 that says why, and when
	// to try again, and names no file to the public.
	accepted := invoked
	for _, a := range f.answers {
		switch {
		case a.code == http.StatusAccepted && a.runID != "":
			accepted = append(accepted, a.runID)
		case a.code == http.StatusServiceUnavailable && a.phase != "before" && a.retryAfter == "30" &&
			a.err == "the store cannot write: disk full; nothing was recorded: retry later":
		default:
			t.Errorf("webhook answered %+v", a)
		}
	}
	// Every run accepted ends succeeded: those in flight when the disk
	// filled waited for it and went on.
	for _, id := range accepted {
		var run struct{ State routine.State }
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get(d.url + "/v1/runs/" + id)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&run)
			resp.Body.Close()
			if err != nil || run.State.Final() || time.Now().After(deadline) {
				break
			}
		}
		if run.State != routine.StateSucceeded {
			t.Errorf("run %s accepted with 202 is %s, want succeeded", id, run.State)
		}
	}

	// The outage is logged once, and its end once.
	logs := d.logs()
	if n := strings.Count(logs, "the store cannot write: new runs are refused"); n != 1 {
		t.Errorf("the outage is logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs, "the store writes again"); n != 1 {
		t.Errorf("the end of the outage is logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs, "level=ERROR") + strings.Count(logs, "level=WARN"); n != 1 {
		t.Errorf("%d warnings and errors in the log, want the outage's only:\n%s", n, logs)
	}

	// Stopped, the store holds the runs accepted and no other, all
	// succeeded, and is intact.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, d.logs())
	}
	db, err := sql.Open("sqlite", filepath.Join(disk, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var runs, succeeded int
	var check string
	if err := db.QueryRow("SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM runs").Scan(&runs, &succeeded); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	if runs != len(accepted) || succeeded != runs || check != "ok" {
		t.Errorf("store after the outage: %d runs, %d succeeded, integrity %q; want the %d accepted, all succeeded, ok", runs, succeeded, check, len(accepted))
	}
	for _, a := range f.answers {
		if a.code == http.StatusServiceUnavailable {
			t.Logf("POST /hooks/in on a full disk: %d Retry-After: %s {\"error\":%q}", a.code, a.retryAfter, a.err)
			break
		}
	}
	t.Logf("POST /v1/routines/sink/runs on a full disk: %d Retry-After: %s {\"error\":%q}", invoke.code, invoke.retryAfter, invoke.err)
	t.Logf("GET /readyz on a full disk: %d Retry-After: %s {\"error\":%q}", ready.code, ready.retryAfter, ready.err)
	t.Logf("webhooks: before %d accepted; disk full %d accepted, %d refused; freed %d accepted, %d refused; ready again %s after space returned; %d runs succeeded",
		f.count("before", 202), f.count("full", 202), f.count("full", 503), f.count("freed", 202), f.count("freed", 503), recovered.Round(time.Millisecond), succeeded)
	t.Logf("disk full for %s; daemon log:\n%s", freed.Sub(filled).Round(time.Millisecond), logs)
}
