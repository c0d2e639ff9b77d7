package cli_test

import (
	"encoding/json"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

const (
	remoteToken = "tok-remote-9f3a2c71"
	// remoteSecret is the value the tests store on the server; it must
	// never be printed, logged or answered.
	remoteSecret = "s3cret-value-5e7d"
)

// remoteEnv is secretEnv with a configuration directory of the test's
// own and no token or profile from the process.
func remoteEnv(t *testing.T) func(string) (string, bool) {
	t.Helper()
	home := t.TempDir()
	return secretEnv(t, map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "xdg"), "ROUTINES_TOKEN": "", "ROUTINES_PROFILE": ""})
}

// remoteServer serves a project of routines with a token, on an
// environment of its own, and returns the daemon and its URL.
func remoteServer(t *testing.T) (*clitest.Daemon, string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hello", "routine.yaml"), `name: hello
inputs:
  who: { default: world }
triggers:
  - event: { name: greet.me }
steps:
  - id: greet
    run: echo "hello {{ input.who }}"
`)
	writeFile(t, filepath.Join(dir, "flaky", "routine.yaml"), `name: flaky
dead_letter: true
steps:
  - id: check
    run: echo broken >&2; exit 4
`)
	writeFile(t, filepath.Join(dir, "slow", "routine.yaml"), `name: slow
steps:
  - id: wait
    run: sleep 0.5; echo slow done
`)
	writeFile(t, filepath.Join(dir, "check", "routine.yaml"), checkRoutine)
	d := clitest.StartServeWith(t, cli.Deps{Getenv: remoteEnv(t)}, dir, "--token", remoteToken)
	return d, "http://" + d.Addr
}

// remoteCLI runs commands on one environment and keeps every output, so
// that a test can check what was never printed.
type remoteCLI struct {
	t      *testing.T
	getenv func(string) (string, bool)
	dir    string // an empty project: nothing is read from it
	mu     sync.Mutex
	all    []string // what each command printed
}

func newRemoteCLI(t *testing.T) *remoteCLI {
	return &remoteCLI{t: t, getenv: remoteEnv(t), dir: t.TempDir()}
}

// run runs a command line with stdin.
func (c *remoteCLI) run(stdin string, args ...string) result {
	c.t.Helper()
	r := routinesWith(c.t, cli.Deps{Getenv: c.getenv, Stdin: strings.NewReader(stdin)}, c.dir, args...)
	c.mu.Lock()
	c.all = append(c.all, r.stdout+r.stderr)
	c.mu.Unlock()
	return r
}

// must runs a command line that must exit with code and print want
// (stdout, then stderr).
func (c *remoteCLI) must(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run("", args...)
	if r.code != code || !strings.Contains(r.stdout+r.stderr, want) {
		c.t.Fatalf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", args, r.code, code, want, r.stdout, r.stderr)
	}
	return r
}

// never fails if any output holds one of secrets.
func (c *remoteCLI) never(secrets ...string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, out := range c.all {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				c.t.Errorf("printed %q:\n%s", s, out)
			}
		}
	}
}

func (c *remoteCLI) configPath() string {
	v, _ := c.getenv("XDG_CONFIG_HOME")
	return filepath.Join(v, "routines", "config.yaml")
}

// loggedIn starts a server and returns it, its URL, and commands logged
// in to it as the profile default.
func loggedIn(t *testing.T) (*clitest.Daemon, string, *remoteCLI) {
	t.Helper()
	d, url := remoteServer(t)
	c := newRemoteCLI(t)
	c.must(0, "logged in", "login", url, "--token", remoteToken)
	return d, url, c
}

// closedURL is the URL of a loopback port nothing listens on.
func closedURL(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestLoginChecksTheTokenAndSavesAPrivateProfile(t *testing.T) {
	t.Parallel()
	_, url := remoteServer(t)
	c := newRemoteCLI(t)
	c.must(2, "refused the token given (401)", "login", url, "--token", "wrong-token")
	c.must(2, "refused no token (401)", "login", url)
	if _, err := os.Stat(c.configPath()); !os.IsNotExist(err) {
		t.Fatalf("a refused login wrote the profiles: %v", err)
	}
	gone := closedURL(t, "127.0.0.1")
	c.must(2, "nothing answers at "+gone, "login", gone, "--token", remoteToken)
	r := c.must(2, "plain http: the token crosses the network unencrypted", "login", closedURL(t, "0.0.0.0"), "--token", remoteToken)
	if !strings.Contains(r.stderr, "nothing answers") {
		t.Fatalf("unreachable: %s", r.stderr)
	}
	for _, bad := range []string{"ftp://host", "routines.example.com", "http://user:pw@127.0.0.1:1", url + "/?q=1"} {
		c.must(2, "write", "login", bad, "--token", remoteToken)
	}
	c.must(2, `profile name "no/slash"`, "login", url, "--profile", "no/slash", "--token", remoteToken)

	// The token from stdin (piped), --token, and $ROUTINES_TOKEN.
	if r := c.run(remoteToken+"\n", "login", url+"/"); r.code != 0 || !strings.Contains(r.stdout, "logged in to "+url+" as profile default") || strings.Contains(r.stderr, "warning") {
		t.Fatalf("login from stdin: %+v", r)
	}
	c.must(0, "as profile prod", "login", url, "--profile", "prod", "--token", remoteToken)
	withEnv := &remoteCLI{t: t, dir: c.dir, getenv: func(k string) (string, bool) {
		if k == "ROUTINES_TOKEN" {
			return remoteToken, true
		}
		if k == "ROUTINES_PROFILE" {
			return "envp", true
		}
		return c.getenv(k)
	}}
	withEnv.must(0, "as profile envp", "login", url)
	withEnv.never(remoteToken)

	info, err := os.Stat(c.configPath())
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("profiles file: %v %v", info, err)
	}
	if dir, err := os.Stat(filepath.Dir(c.configPath())); err != nil || dir.Mode().Perm() != 0o700 {
		t.Fatalf("profiles directory: %v %v", dir, err)
	}
	data, _ := os.ReadFile(c.configPath())
	for _, want := range []string{"default:", "prod:", "envp:", "url: " + url + "\n", "token: " + remoteToken} {
		if !strings.Contains(string(data), want) {
			t.Errorf("profiles file lacks %q:\n%s", want, data)
		}
	}
	c.must(2, `no profile "nope" in `+c.configPath()+": the profiles are default, envp, prod", "--profile", "nope", "runs")
	c.must(0, "profile prod ("+url+") removed", "logout", "--profile", "prod")
	c.must(2, `no profile "prod"`, "--profile", "prod", "runs")
	c.must(0, "profile default", "logout")
	c.never(remoteToken)
}

// Every command that reads or acts does so on the profile's server, from
// a directory that is no project of it, and never prints the token.
func TestCommandsActOnTheProfilesServer(t *testing.T) {
	t.Parallel()
	d, url, c := loggedIn(t)
	p := []string{"--profile", "default"}
	at := func(args ...string) []string { return append(append([]string{}, p...), args...) }

	c.must(0, "no runs recorded in server "+url+" yet", at("runs")...)
	c.must(0, "[greet] hello remote", at("invoke", "hello", "-i", "who=remote", "--wait")...)
	r := c.must(0, "hello", at("runs")...)
	if !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "api") {
		t.Fatalf("runs: %s", r.stdout)
	}
	var runs []map[string]any
	r = c.must(0, "", at("runs", "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 1 || runs[0]["routine"] != "hello" {
		t.Fatalf("runs -o json: %v %s", err, r.stdout)
	}
	id := runs[0]["id"].(string)
	// The filters go to the server.
	c.must(0, id, at("runs", "--trigger", "api", "--since", "1h", "--state", "succeeded")...)
	c.must(0, "no runs in server "+url+" match", at("runs", "--trigger", "cron")...)
	c.must(0, "no runs in server "+url+" match", at("runs", "--tag", "nosuch")...)
	c.must(0, "routine   hello", at("show", "last")...)
	r = c.must(0, "", at("show", strings.ToLower(id[:12]), "-o", "json")...)
	var detail struct {
		ID    string `json:"id"`
		Steps []struct {
			ID      string         `json:"id"`
			Outputs map[string]any `json:"outputs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &detail); err != nil || detail.ID != id || len(detail.Steps) != 1 || detail.Steps[0].ID != "greet" {
		t.Fatalf("show -o json: %v %s", err, r.stdout)
	}
	c.must(0, id+" greet stdout hello remote", at("logs", "-1")...)
	r = c.must(0, "", at("logs", id, "--step", "greet", "-o", "json")...)
	var lines []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &lines); err != nil || len(lines) != 1 || lines[0]["text"] != "hello remote" {
		t.Fatalf("logs -o json: %v %s", err, r.stdout)
	}
	c.must(2, "no run 01NOSUCHRUN in server "+url, at("show", "01NOSUCHRUN")...)
	c.must(2, "-3: 1 run recorded in server "+url, at("logs", "-3")...)

	// logs -f follows a live run on the server to its end.
	r = c.must(0, "run ", at("invoke", "slow")...)
	slow := strings.Fields(r.stdout)[1]
	r = c.must(0, slow+" wait stdout slow done", at("logs", "-f", slow)...)
	if !strings.Contains(r.stderr, "run "+slow+" succeeded") {
		t.Fatalf("logs -f: %s", r.stderr)
	}

	// A dead run, its dead letter, and its replay on the server.
	c.must(1, "input kept for replay", at("invoke", "flaky", "--wait")...)
	r = c.must(0, "", at("dlq", "list", "-o", "json")...)
	var dead []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &dead); err != nil || len(dead) != 1 || dead[0]["routine"] != "flaky" {
		t.Fatalf("dlq list: %v %s", err, r.stdout)
	}
	c.must(1, "run ", at("dlq", "replay", "last")...)
	r = c.must(0, "", at("runs", "--routine", "flaky", "-o", "json")...)
	runs = nil
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 2 || runs[0]["replay_of"] != dead[0]["id"] {
		t.Fatalf("after the replay: %v %s", err, r.stdout)
	}
	c.must(2, "is succeeded, not dead", at("dlq", "replay", id)...)
	c.must(0, "flaky", at("runs", "--state", "dead")...)

	c.must(0, "queued · hello", at("emit", "greet.me", "-d", `{"from":"cli"}`)...)
	c.must(2, `no routine "nope"`, at("invoke", "nope")...)

	// Secrets: set on the server, used by its runs, listed without values.
	if r := c.run(remoteSecret+"\n", at("secrets", "set", "API_KEY")...); r.code != 0 || !strings.Contains(r.stdout, "secret API_KEY set (version 1) on server "+url) {
		t.Fatalf("secrets set: %+v", r)
	}
	c.must(0, "", at("invoke", "check", "-i", "want="+sha16(remoteSecret), "--wait")...)
	c.must(0, "API_KEY", at("secrets", "list")...)
	r = c.must(0, "", at("secrets", "list", "-o", "json")...)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["name"] != "API_KEY" || list[0]["version"] != 1.0 {
		t.Fatalf("secrets list -o json: %v %s", err, r.stdout)
	}
	r = c.must(0, "server    "+url+" (profile default)", at("status")...)
	for _, want := range []string{"vault     1 secret(s): API_KEY", "4 routine(s) on " + url, "event greet.me", "(run by hand or the API)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	c.must(0, "secret API_KEY removed from server "+url, at("secrets", "rm", "API_KEY")...)
	c.must(2, "no secret API_KEY is stored on server "+url, at("secrets", "rm", "API_KEY")...)
	r = c.must(0, "", at("status", "-o", "json")...)
	var st struct {
		Server   string           `json:"server"`
		Profile  string           `json:"profile"`
		Secrets  []string         `json:"secrets"`
		Problems []any            `json:"problems"`
		Routines []map[string]any `json:"routines"`
		LastRun  map[string]any   `json:"last_run"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Server != url || st.Profile != "default" || st.Secrets == nil || len(st.Secrets) != 0 ||
		st.Problems == nil || len(st.Routines) != 4 || st.Routines[0]["name"] != "check" || st.LastRun["routine"] != "check" {
		t.Fatalf("status -o json: %v %s", err, r.stdout)
	}

	// $ROUTINES_PROFILE selects the profile too; without one, the local
	// project is read, as before any login.
	env := &remoteCLI{t: t, dir: c.dir, getenv: func(k string) (string, bool) {
		if k == "ROUTINES_PROFILE" {
			return "default", true
		}
		return c.getenv(k)
	}}
	env.must(0, "check", "runs")
	c.must(2, "nothing is recorded in project "+c.dir+" yet", "runs")
	c.must(2, "nothing is recorded in project "+c.dir+" yet", "secrets", "list")

	c.never(remoteToken)
	c.never(remoteSecret)
	env.never(remoteToken)
	if strings.Contains(d.Out.String(), remoteSecret) || strings.Contains(d.Out.String(), remoteToken) {
		t.Errorf("the daemon's log holds the secret or the token:\n%s", d.Out.String())
	}
}

// A profile whose server is gone, or that no longer takes its token, is
// named in the error, with what to do; the token is not printed.
func TestProfileOfAServerGoneOrATokenRefused(t *testing.T) {
	t.Parallel()
	_, url, c := loggedIn(t)
	stale := "stale-token-0d4e"
	data, _ := os.ReadFile(c.configPath())
	gone := closedURL(t, "127.0.0.1")
	data = append(data, []byte("  stale:\n    url: "+url+"\n    token: "+stale+"\n  gone:\n    url: "+gone+"\n    token: "+stale+"\n")...)
	if err := os.WriteFile(c.configPath(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"runs"}, {"show", "last"}, {"logs", "-f", "last"}, {"status"}, {"secrets", "list"}, {"dlq", "list"}, {"invoke", "hello"}, {"emit", "x"}} {
		c.must(2, "refused the token of profile stale (401): log in again with: routines login URL --profile stale", append([]string{"--profile", "stale"}, args...)...)
		c.must(2, "nothing answers at "+gone+" (profile gone)", append([]string{"--profile", "gone"}, args...)...)
	}
	// --server and --token still win over the profile.
	c.must(2, "no daemon answers at "+gone, "--profile", "stale", "invoke", "hello", "--server", gone)
	c.must(0, "queued · hello", "--profile", "stale", "invoke", "hello", "--token", remoteToken)
	c.never(stale)
	c.never(remoteToken)
}

// The profiles file holds tokens: one that others may read, or a link,
// is refused by every command that reads it, with the fix.
func TestUnsafeProfilesFileIsRefused(t *testing.T) {
	t.Parallel()
	_, url, c := loggedIn(t)
	path := c.configPath()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--profile", "default", "runs"}, {"login", url, "--token", remoteToken}, {"logout"}} {
		c.must(2, path+" has mode 0644: it holds API tokens, which other users could read; make it private with: chmod 600 "+path, args...)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// A link: neither read through nor written through.
	target := filepath.Join(t.TempDir(), "elsewhere.yaml")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(target, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--profile", "default", "status"}, {"login", url, "--profile", "other", "--token", remoteToken}, {"logout"}} {
		c.must(2, path+" is a symbolic link", args...)
	}
	if after, _ := os.ReadFile(target); string(after) != string(data) {
		t.Fatalf("the link's target was written:\n%s", after)
	}
	if info, err := os.Lstat(path); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", info, err)
	}
	// A file that is not a profiles file is refused without quoting it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("profiles: [\""+remoteToken+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(2, "is not a profiles file as routines login writes it", "--profile", "default", "runs")
	c.never(remoteToken)
}
