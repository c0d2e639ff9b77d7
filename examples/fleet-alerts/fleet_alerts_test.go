// Package fleetalerts is the fleet alert consolidation scenario: a
// cpu-watch routine on each monitoring node, a cpu-incident routine on the
// central deployment. Its test runs three node daemons and the central one
// on loopback, with in-process stand-ins for the nodes' metrics endpoints,
// the log service and Slack's Web API.
package fleetalerts

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
)

// sample is one reading of a node's metrics endpoint.
type sample struct {
	cpu    float64
	errors float64
}

// metrics serves a node's readings in Prometheus text format, one per
// request, then a quiet reading once they are spent.
type metrics struct {
	mu      sync.Mutex
	samples []sample
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	s := sample{cpu: 12, errors: 0.01}
	if len(m.samples) > 0 {
		s, m.samples = m.samples[0], m.samples[1:]
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP node_cpu_percent CPU busy.\n# TYPE node_cpu_percent gauge\nnode_cpu_percent %g\n"+
		"# TYPE http_error_rate gauge\nhttp_error_rate %g\n", s.cpu, s.errors)
}

func (m *metrics) left() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.samples)
}

// slackAPI records chat.postMessage calls as Slack's Web API answers them.
type slackAPI struct {
	mu       sync.Mutex
	messages []map[string]string
}

func (s *slackAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Slack takes the token as a bearer header or a form field.
	token := r.Form.Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	if r.URL.Path != "/api/chat.postMessage" || token != "xoxb-test" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	msg := map[string]string{"channel": r.Form.Get("channel"), "text": r.Form.Get("text")}
	if msg["text"] == "" { // slack-go may send JSON
		msg["text"] = r.Form.Get("blocks")
	}
	s.mu.Lock()
	s.messages = append(s.messages, msg)
	n := len(s.messages)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ok":true,"channel":"C0OPS","ts":"1700000000.%06d"}`, n)
}

func (s *slackAPI) posted() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.messages...)
}

// configure copies a routine directory and sets its env: and every: for the test.
func configure(t *testing.T, src string, env map[string]string) string {
	t.Helper()
	dir := clitest.CopyProject(t, src)
	path := filepath.Join(dir, "routine.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if strings.TrimSpace(line) == "- every: 1m" {
			lines[i] = "  - every: 1s"
		}
		for k, v := range env {
			if strings.HasPrefix(line, "  "+k+":") {
				lines[i] = fmt.Sprintf("  %s: %q", k, v)
			}
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOneSlackMessagePerIncident: the central routine on a `routines
// serve` of its own.
func TestOneSlackMessagePerIncident(t *testing.T) {
	oneMessagePerIncident(t, func(t *testing.T, central string) (string, func() string) {
		addr, out := clitest.Serve(t, central, "--token", "central-token")
		return addr, func() string {
			_, runs, _ := clitest.RunCLI(t, "--project", central, "runs", "-o", "json")
			return out.String() + "\nruns: " + runs
		}
	})
}

// TestOneSlackMessagePerIncidentOnADeployment: the central routine pushed
// to a deployment, a `routines server` and a `routines worker` on
// PostgreSQL; the nodes' events go to the server, and its routine
// deduplicates them across the nodes as the local daemon does.
func TestOneSlackMessagePerIncidentOnADeployment(t *testing.T) {
	db := pgtest.StartServer(t).Database(t)
	oneMessagePerIncident(t, func(t *testing.T, central string) (string, func() string) {
		tmp := t.TempDir()
		dirs := func(name string) []string {
			return []string{"--db", db, "--cache-dir", filepath.Join(tmp, name, "cache"), "--work-dir", filepath.Join(tmp, name, "work"), "--poll", "200ms"}
		}
		server := clitest.StartRemote(t, "server", append(dirs("server"), "--addr", "127.0.0.1:0", "--token", "central-token")...)
		worker := clitest.StartRemote(t, "worker", append(dirs("worker"), "--slots", "4")...)
		if code, out, errOut := clitest.RunCLI(t, "push", central, "--server", "http://"+server.Addr, "--token", "central-token", "-m", "the incident routine"); code != 0 {
			t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
		}
		return server.Addr, func() string { return "server:\n" + server.Out.String() + "\nworker:\n" + worker.Out.String() }
	})
}

// oneMessagePerIncident runs three node daemons against the central
// routine that startCentral serves from the directory central, and checks
// that Slack got one message, for the one node with an incident.
// startCentral returns the address the nodes emit to, and what to show
// when the test fails.
func oneMessagePerIncident(t *testing.T, startCentral func(t *testing.T, central string) (addr string, describe func() string)) {
	t.Setenv("CENTRAL_TOKEN", "central-token")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-test")

	slack := &slackAPI{}
	slackSrv := httptest.NewServer(slack)
	t.Cleanup(slackSrv.Close)
	logs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s 12:00:01 ERROR upstream timeout (tail %s)\n%s 12:00:02 ERROR pool exhausted\n",
			strings.Split(r.URL.Path, "/")[2], r.URL.Query().Get("tail"), strings.Split(r.URL.Path, "/")[2])
	}))
	t.Cleanup(logs.Close)

	central := configure(t, "central", map[string]string{"LOGS_URL": logs.URL, "SLACK_API": slackSrv.URL + "/api/"})
	centralAddr, describe := startCentral(t, central)

	rising, falling := []sample{}, []sample{}
	for i := range 7 {
		rising = append(rising, sample{cpu: 95, errors: 0.01 * float64(i+1)})
		falling = append(falling, sample{cpu: 96, errors: 0.09 - 0.01*float64(i)})
	}
	nodes := map[string]*metrics{
		"checkout": {samples: rising},                                                                   // an incident: 5+ breaches, errors rising
		"search":   {samples: append(append([]sample{}, rising[:4]...), sample{cpu: 20, errors: 0.05})}, // 4 breaches only
		"payments": {samples: falling},                                                                  // saturated, but errors falling
	}
	outs := map[string]*clitest.Buffer{}
	for service, m := range nodes {
		srv := httptest.NewServer(m)
		t.Cleanup(srv.Close)
		dir := configure(t, "node", map[string]string{"SERVICE": service, "METRICS_URL": srv.URL, "CENTRAL_URL": "http://" + centralAddr})
		_, outs[service] = clitest.Serve(t, dir)
	}

	// Wait for every node to read all its samples, then for two more ticks.
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range nodes {
		for m.left() > 0 {
			if time.Now().After(deadline) {
				for s, o := range outs {
					t.Logf("node %s:\n%s", s, o.String())
				}
				t.Fatalf("samples not read in time")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(2500 * time.Millisecond)

	posted := slack.posted()
	if len(posted) != 1 {
		for s, o := range outs {
			t.Logf("node %s:\n%s", s, o.String())
		}
		t.Fatalf("%d Slack messages, want 1: %v\ncentral:\n%s", len(posted), posted, describe())
	}
	msg := posted[0]
	for _, want := range []string{"checkout: CPU at 95% for 5 readings", "error rate rising to 0.05", "Runbook: https://runbooks.example.com/cpu/checkout",
		"checkout 12:00:01 ERROR upstream timeout (tail 20)"} {
		if !strings.Contains(msg["text"], want) {
			t.Errorf("message lacks %q:\n%s", want, msg["text"])
		}
	}
	if msg["channel"] != "#ops-alerts" {
		t.Errorf("channel %q", msg["channel"])
	}
}
