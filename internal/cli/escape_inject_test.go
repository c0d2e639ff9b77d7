package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

// escapeToken is the secret TestEscapeSecretOnCommandLine looks for; the
// scanner's pattern matches it without containing it ("valu[e]").
const escapeToken = "tok-5ec2e7-value"

// TestEscapeSecretOnCommandLine runs a step that uses a secret in its run
// line the way docs/secrets.md once advised (<(printf %s '{{TOK}}')) and
// holds it for a while, and meanwhile scans every process's command line,
// from the test and from a step of another routine that declares no
// secrets: the secret must be on none. The inputs layer stops it: the line
// refers to $ROUTINES_T1 instead of holding the value.
func TestEscapeSecretOnCommandLine(t *testing.T) {
	t.Setenv("ESCAPE_TOK", escapeToken)
	dir := writeProject(t, map[string]string{"holder": `name: holder
secrets: [ESCAPE_TOK]
steps:
  - id: hold
    run: |
      cat <(printf %s '{{ESCAPE_TOK}}') > /dev/null
      test -n "{{ESCAPE_TOK}}" && touch started && sleep 2
      echo held
`,
		"scanner": `name: scanner
steps:
  - id: scan
    run: |
      seen=0 found=0
      for f in /proc/[0-9]*/cmdline; do
        line=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
        seen=$((seen+1))
        if grep -q 'tok-5ec2e7-valu[e]' <<< "$line"; then found=$((found+1)); fi
      done
      echo "seen=$seen" >> "$ROUTINES_OUTPUT"
      echo "found=$found" >> "$ROUTINES_OUTPUT"
`})
	addr, _ := clitest.Serve(t, dir)
	resp, err := http.Post("http://"+addr+"/v1/routines/holder/runs", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	started := filepath.Join(dir, "holder", "started")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder step did not start")
		}
	}
	if pids := cmdlinesWith(t, escapeToken); len(pids) > 0 {
		t.Errorf("the inputs layer (run-line rendering) failed: the secret is on the command line of processes %v", pids)
	}
	resp, err = http.Post("http://"+addr+"/v1/routines/scanner/runs?wait=10s", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var run struct {
		State string `json:"state"`
		Steps []struct {
			Outputs map[string]string `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&run); err != nil || run.State != "succeeded" || len(run.Steps) != 1 {
		t.Fatalf("scanner: %v %+v", err, run)
	}
	out := run.Steps[0].Outputs
	if out["found"] != "0" {
		t.Errorf("the inputs layer (run-line rendering) failed: a step of another routine read the secret from %s command lines (of %s it saw)", out["found"], out["seen"])
	}
	if _, err := os.Stat(started); err != nil {
		t.Fatal(err)
	}
}

// cmdlinesWith returns the processes whose command line holds s.
func cmdlinesWith(t *testing.T, s string) []string {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte(s)) {
			pids = append(pids, strings.Split(f, "/")[2])
		}
	}
	return pids
}

// TestEscapeHTTPValues sends values that would change the request around
// them if inserted as text: in the url's path a value is one escaped
// segment (no ../, ?, # or / of its own), in its query one escaped value,
// and a header value with a line break fails the step with unsafe_value
// instead of adding a header.
func TestEscapeHTTPValues(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.RequestURI)
		if r.Header.Get("X-Admin") != "" {
			t.Errorf("the inputs layer (header check) failed: a value added the header X-Admin")
		}
	}))
	defer srv.Close()
	dir := writeRoutine(t, `name: http-values
inputs:
  api: { required: true }
  id: { required: true }
  q: { required: true }
  dots: { required: true }
  h: { required: true }
steps:
  - id: path
    http: { url: "{{ input.api }}/items/{{ input.id }}/x?q={{ input.q }}&fixed=1" }
  - id: dots
    http: { url: "{{ input.api }}/items/{{ input.dots }}/x" }
  - id: header
    http: { url: "{{ input.api }}/h", headers: { X-Id: "{{ input.h }}" } }
`)
	code, stdout, stderr := clitest.RunCLI(t, "--project", dir, "run-once", dir, "-o", "json", "-i", "api="+srv.URL,
		"-i", "id=../admin?x=1#frag", "-i", "q=a&admin=1#x", "-i", "dots=..", "-i", "h=a\r\nX-Admin: yes")
	if code == 0 || !strings.Contains(stdout, `"code": "unsafe_value"`) {
		t.Errorf("the inputs layer (header check) failed: run-once exit %d, want the run failed with unsafe_value:\n%s\n%s", code, stdout, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/items/..%2Fadmin%3Fx=1%23frag/x?q=a%26admin%3D1%23x&fixed=1", "/items/%2E%2E/x"}
	if !slices.Equal(seen, want) {
		t.Errorf("the inputs layer (url escaping) failed: the server saw %q, want %q", seen, want)
	}
}

// TestEscapeSQLParams: a value rendered into params stays a bound value,
// whatever SQL it holds, and the query itself is never rendered.
func TestEscapeSQLParams(t *testing.T) {
	t.Parallel()
	const evil = `x'); DROP TABLE t; INSERT INTO t VALUES ('pwned`
	dir := writeRoutine(t, `name: sql-values
inputs:
  v: { required: true }
steps:
  - id: put
    sql:
      query: |
        CREATE TABLE IF NOT EXISTS t (v TEXT);
        INSERT INTO t (v) VALUES (?)
      params: ["{{ input.v }}"]
  - id: get
    sql: { query: "SELECT v FROM t" }
`)
	code, stdout, stderr := clitest.RunCLI(t, "--project", dir, "run-once", dir, "-o", "json", "-i", "v="+evil)
	if code != 0 {
		t.Fatalf("run-once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var run struct {
		Steps []struct {
			Outputs map[string]any `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(stdout), &run); err != nil || len(run.Steps) != 2 {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := []any{map[string]any{"v": evil}}
	if got := run.Steps[1].Outputs["rows"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the inputs layer (bound SQL params) failed: rows %#v, want %#v", got, want)
	}
}
