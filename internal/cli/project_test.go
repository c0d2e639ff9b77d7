package cli_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The project rule, the way the newcomer met it: commands run as
// processes of their own in the directories a user would type them in.

// checkout is a directory laid out like the repository: examples/ with a
// routine that needs a secret and one that does not.
type checkout struct {
	root string
	env  []string // a master key file of the test's own
}

func newCheckout(t *testing.T) *checkout {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"examples/secret-greeting/routine.yaml":        "name: secret-greeting\nsecrets: [GREETING_TOKEN]\nsteps:\n  - id: sign\n    run: test -n \"$GREETING_TOKEN\" && echo signed\n",
		"examples/secret-greeting/hook/routine.yaml":   "name: hook\nsecrets: [HOOK_SECRET]\ntriggers:\n  - webhook: {path: /hook, secret: \"{{HOOK_SECRET}}\"}\n  - cron: \"0 8 * * 1-5\"\n    timezone: Europe/Berlin\nsteps:\n  - id: one\n    run: echo one\n",
		"examples/secret-greeting/broken/routine.yaml": "name: broken\nsteps:\n  - id: one\n    runn: echo one\n",
		"examples/hello/routine.yaml":                  "name: hello\ninputs: {who: {default: world}}\nsteps:\n  - id: greet\n    run: echo \"hello {{ input.who }}\"\n",
		"examples/plain/routine.yaml":                  "name: plain\nsteps:\n  - id: one\n    run: echo one\n",
	}
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &checkout{root: root, env: []string{"ROUTINES_MASTER_KEY_FILE=" + filepath.Join(t.TempDir(), "master.key"), "ROUTINES_MASTER_KEY=", "ROUTINES_PROJECT="}}
}

// run runs routines args in the directory dir (relative to the checkout)
// with stdin, as a process of its own.
func (c *checkout) run(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = filepath.Join(c.root, dir)
	cmd.Env = append(append(os.Environ(), "ROUTINES_TEST_SERVE_CHILD=1"), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// serve starts `routines serve args` in dir and waits for its first line.
func (c *checkout) serve(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = filepath.Join(c.root, dir)
	cmd.Env = append(append(os.Environ(), "ROUTINES_TEST_SERVE_CHILD=1"), c.env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "serving ") {
		t.Fatalf("serve said %q (%v); stderr: %s", line, err, stderr.String())
	}
	return cmd
}

func mustContain(t *testing.T, what string, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("%s: output lacks %q\nstdout: %s\nstderr: %s", what, w, r.stdout, r.stderr)
		}
	}
}

func TestProjectRuleAcrossCommands(t *testing.T) {
	t.Parallel()
	c := newCheckout(t)

	// A name typed at the checkout's root runs the routine in its own
	// project: no .routines/ appears at the root to capture every folder.
	mustContain(t, "run-once by name", c.run(t, "", "", "run-once", "plain"), 0, "[one] one", "new project "+filepath.Join(c.root, "examples/plain"))
	if _, err := os.Stat(filepath.Join(c.root, ".routines")); !os.IsNotExist(err) {
		t.Fatalf("run-once by name made a .routines/ at the root: %v", err)
	}
	mustContain(t, "a typo", c.run(t, "", "", "run-once", "helo"), 2, `did you mean "hello"?`)

	// The secret-greeting README's path: the secret is stored from the
	// routine's directory, then the routine is served from the root.
	mustContain(t, "secrets set", c.run(t, "examples/secret-greeting", "tok-123", "secrets", "set", "GREETING_TOKEN"), 0,
		"new project "+filepath.Join(c.root, "examples/secret-greeting"), "created the master key", "back it up")
	proj := filepath.Join(c.root, "examples/secret-greeting")
	daemon := c.serve(t, "", "examples/secret-greeting")
	mustContain(t, "invoke from the routine's directory", c.run(t, "examples/secret-greeting", "", "invoke", "secret-greeting", "--wait"), 0, "succeeded")
	mustContain(t, "runs from the routine's directory", c.run(t, "examples/secret-greeting", "", "runs"), 0, "secret-greeting")
	mustContain(t, "secrets list there", c.run(t, "examples/secret-greeting", "", "secrets", "list"), 0, "GREETING_TOKEN")
	// The webhook whose secret is not set answers strangers 503 naming
	// nothing; status shows the operator why.
	resp, err := http.Post(daemonURL(t, proj)+"/hooks/hook", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "HOOK_SECRET") {
		t.Fatalf("webhook without its secret: %d %s", resp.StatusCode, body)
	}
	mustContain(t, "status there", c.run(t, "examples/secret-greeting", "", "status"), 0,
		"project     "+proj, "GREETING_TOKEN", "daemon      up: pid", "secret-greeting",
		"problem     hook, webhook /hooks/hook: ", "HOOK_SECRET is not set",
		" 08:00 CE", // the cron's next firing, in its timezone (CET or CEST)
		"broken/routine.yaml:4:5:")

	// From the root, nothing is recorded: every message names where it
	// looked, and where the runs and the daemon are.
	mustContain(t, "runs from the root", c.run(t, "", "", "runs"), 2, "nothing is recorded in project "+c.root,
		"projects below with a store: examples/plain, examples/secret-greeting (cd there, or pass --project DIR)")
	mustContain(t, "invoke from the root", c.run(t, "", "", "invoke", "secret-greeting"), 2, "no daemon is running for project "+c.root,
		"projects below with a daemon up: examples/secret-greeting (cd there")

	// One daemon per project: a second serve is refused, naming the first.
	second := c.run(t, "examples/secret-greeting", "", "serve", "--addr", "127.0.0.1:0")
	mustContain(t, "a second serve", second, 2, "another daemon serves project "+proj, "pid "+itoa(daemon.Process.Pid))

	// Killed with SIGKILL, the daemon leaves a stale record: said, exit 2.
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()
	mustContain(t, "invoke after kill -9", c.run(t, "examples/secret-greeting", "", "invoke", "secret-greeting"), 2,
		"gone (killed or crashed)", "pid "+itoa(daemon.Process.Pid), filepath.Join(proj, ".routines", "serve.json"))
	mustContain(t, "status after kill -9", c.run(t, "examples/secret-greeting", "", "status"), 0, "daemon      stale:")
	c.serve(t, "examples/secret-greeting")
}

// An input nothing reads is refused instead of silently ignored.
func TestUndeclaredInputRefused(t *testing.T) {
	t.Parallel()
	c := newCheckout(t)
	mustContain(t, "an input plain does not read", c.run(t, "", "", "run-once", "examples/plain", "--input", "who=team"), 2,
		"plain declares no inputs and reads no input.who")
	mustContain(t, "a declared input", c.run(t, "", "", "run-once", "examples/hello", "--input", "who=team"), 0, "hello team")
	mustContain(t, "an undeclared one", c.run(t, "", "", "run-once", "examples/hello", "--input", "whom=team"), 2, `declares no input "whom"`)
}

// A search by name from a big tree stops at its bound instead of walking it.
func TestNameSearchIsBounded(t *testing.T) {
	t.Parallel()
	c := newCheckout(t)
	for i := range 2100 {
		if err := os.MkdirAll(filepath.Join(c.root, "aaa", itoa(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	r := c.run(t, "", "", "run-once", "nothing-here")
	mustContain(t, "a name in a big tree", r, 2, "the search stops there")
	t.Logf("gave up after %v", time.Since(start))
}

func itoa(n int) string { return strconv.Itoa(n) }

// daemonURL reads the address the project's daemon recorded.
func daemonURL(t *testing.T, proj string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(proj, ".routines", "serve.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Addr string }
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return "http://" + d.Addr
}
