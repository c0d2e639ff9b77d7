package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
)

// deployment is a server and a worker of one deployment, on the store
// URL db, and the environment of the commands that talk to the server.
type deployment struct {
	server, worker *clitest.Daemon
	env            map[string]string
}

// startDeployment starts `routines server` and `routines worker` on db,
// each with a cache and work directory of its own, as on two machines;
// the worker gets workerArgs too.
func startDeployment(t *testing.T, db string, workerArgs ...string) *deployment {
	t.Helper()
	// The master key, given to servers and workers alike.
	deps := cli.Deps{Getenv: secretEnv(t, nil)}
	srv := clitest.StartRemoteWith(t, deps, "server", append(deploymentArgs(t, db), "--addr", "127.0.0.1:0", "--token", "s3cret-token")...)
	wrk := clitest.StartRemoteWith(t, deps, "worker", append(append(deploymentArgs(t, db), "--slots", "2"), workerArgs...)...)
	return &deployment{server: srv, worker: wrk, env: map[string]string{"ROUTINES_SERVER": "http://" + srv.Addr, "ROUTINES_TOKEN": "s3cret-token"}}
}

// deploymentArgs are the flags of a server or worker on db with a cache
// and work directory of its own, as on a machine of its own.
func deploymentArgs(t *testing.T, db string) []string {
	dir := t.TempDir()
	return []string{"--db", db, "--cache-dir", filepath.Join(dir, "cache"), "--work-dir", filepath.Join(dir, "work"), "--poll", "100ms", "--grace", "5s"}
}

// routines runs the command line against the deployment.
func (d *deployment) routines(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, d.env)}, args...)
}

const greetV1 = "name: greet\ninputs:\n  who: {}\nsteps:\n  - id: hi\n    run: echo \"v1 hello {{ input.who }}\" && cat notes.txt\n"

// The whole loop of remote mode on one store: push, run on a worker,
// push a change, roll it back; a run executes the revision it was queued
// with; invalid and local-only routines are refused before they land.
func TestRemotePushRunRollback(t *testing.T) {
	t.Parallel()
	onEachStore(t, pushRunRollback)
}

// onEachStore runs test in parallel on a deployment's store of each
// driver: a SQLite file, and a PostgreSQL database.
func onEachStore(t *testing.T, test func(t *testing.T, db string)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, "sqlite:"+filepath.Join(t.TempDir(), "deployment.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(t, pgtest.StartServer(t).Database(t))
	})
}

func pushRunRollback(t *testing.T, db string) {
	d := startDeployment(t, db)
	src := t.TempDir()
	greet := filepath.Join(src, "greet")
	writeFile(t, filepath.Join(greet, "routine.yaml"), greetV1)
	if err := os.WriteFile(filepath.Join(greet, "notes.txt"), []byte("from the bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(greet, ".routinesignore"), []byte("secret.env\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(greet, "secret.env"), []byte("TOKEN=hunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := d.routines(t, "push", src, "-m", "first")
	if code != 0 || !strings.Contains(out, "greet: revision ") || !strings.Contains(out, " pushed (3 files") {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := d.routines(t, "push", src); code != 0 || !strings.Contains(out, "greet: unchanged") {
		t.Fatalf("identical push: exit %d %s", code, out)
	}
	code, out, errOut = d.routines(t, "invoke", "greet", "-i", "who=ada", "--wait", "--server", d.env["ROUTINES_SERVER"])
	if code != 0 || !strings.Contains(out, "v1 hello ada") || !strings.Contains(out, "from the bundle") {
		t.Fatalf("invoke v1: exit %d\n%s%s\nworker: %s", code, out, errOut, d.worker.Out.String())
	}

	writeFile(t, filepath.Join(greet, "routine.yaml"), strings.Replace(greetV1, "v1 hello", "v2 hello", 1))
	if code, out, errOut := d.routines(t, "push", greet, "-m", "second"); code != 0 || !strings.Contains(out, "pushed") {
		t.Fatalf("push v2: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = d.routines(t, "revisions", "greet", "-o", "json")
	var revs []api.Revision
	if code != 0 || json.Unmarshal([]byte(out), &revs) != nil || len(revs) != 2 || !revs[0].Current || revs[0].Message != "second" || revs[1].Message != "first" {
		t.Fatalf("revisions: exit %d %s", code, out)
	}
	code, out, errOut = d.routines(t, "diff", "greet", revs[1].Revision[:12])
	if code != 0 || !strings.Contains(out, "--- a/routine.yaml\n+++ b/routine.yaml\n") || !strings.Contains(out, "\n-    run: echo \"v1 hello") ||
		!strings.Contains(out, "\n+    run: echo \"v2 hello") || strings.Contains(out, "a/notes.txt") {
		t.Fatalf("diff: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := d.routines(t, "invoke", "greet", "-i", "who=bob", "--wait", "--server", d.env["ROUTINES_SERVER"]); code != 0 || !strings.Contains(out, "v2 hello bob") {
		t.Fatalf("invoke v2: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = d.routines(t, "rollback", "greet", revs[1].Revision[:12], "-m", "v2 greets wrong")
	if code != 0 || !strings.Contains(out, "is current again") {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := d.routines(t, "invoke", "greet", "-i", "who=cy", "--wait", "--server", d.env["ROUTINES_SERVER"]); code != 0 || !strings.Contains(out, "v1 hello cy") {
		t.Fatalf("invoke after rollback: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := d.routines(t, "rollback", "greet", revs[1].Revision[:12]); code != 2 || !strings.Contains(errOut, "current revision of greet already") {
		t.Fatalf("rollback to the current revision: exit %d %s", code, errOut)
	}
	if code, _, errOut := d.routines(t, "rollback", "greet", "ffffffff"); code != 2 || !strings.Contains(errOut, "no revision ffffffff") {
		t.Fatalf("rollback to an unknown revision: exit %d %s", code, errOut)
	}

	// A file trigger watches one machine's directory: refused by the
	// server, with the reason. An invalid routine is refused before
	// anything is sent.
	watch := filepath.Join(t.TempDir(), "watch")
	writeFile(t, filepath.Join(watch, "routine.yaml"), "name: watch\ntriggers:\n  - file: { path: ./inbox }\nsteps:\n  - id: s\n    run: \"true\"\n")
	if code, _, errOut := d.routines(t, "push", watch); code != 2 || !strings.Contains(errOut, "file trigger") || !strings.Contains(errOut, "routines serve") {
		t.Fatalf("push of a file trigger: exit %d %s", code, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	writeFile(t, filepath.Join(bad, "routine.yaml"), "name: bad\nstepz: []\n")
	if code, _, errOut := d.routines(t, "push", bad); code != 2 || !strings.Contains(errOut, "routine.yaml:2:1") || !strings.Contains(errOut, "nothing was pushed") {
		t.Fatalf("push of an invalid routine: exit %d %s", code, errOut)
	}
	if code, _, errOut := d.routines(t, "revisions", "watch"); code != 2 || !strings.Contains(errOut, `no routine "watch" was pushed here`) {
		t.Fatalf("revisions of a refused routine: exit %d %s", code, errOut)
	}

	// The ignored file never left the machine.
	for _, daemon := range []*clitest.Daemon{d.server, d.worker} {
		if strings.Contains(daemon.Out.String(), "hunter2") {
			t.Fatal("an ignored file's content reached a daemon's log")
		}
	}
}

// Without a token, the server refuses pushes as every API call.
func TestRemotePushNeedsTheToken(t *testing.T) {
	t.Parallel()
	d := startDeployment(t, "sqlite:"+filepath.Join(t.TempDir(), "deployment.db"))
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "routine.yaml"), greetV1)
	d.env["ROUTINES_TOKEN"] = "wrong"
	if code, _, errOut := d.routines(t, "push", src); code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("push with a wrong token: exit %d %s", code, errOut)
	}
}

// push, revisions, rollback and diff find their server through a
// profile as the other remote commands do.
func TestRemotePushThroughAProfile(t *testing.T) {
	t.Parallel()
	d := startDeployment(t, "sqlite:"+filepath.Join(t.TempDir(), "deployment.db"))
	home := t.TempDir()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config"), "ROUTINES_SERVER": "", "ROUTINES_TOKEN": ""}
	run := func(args ...string) (int, string, string) {
		return clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, env)}, args...)
	}
	if code, out, errOut := run("login", d.env["ROUTINES_SERVER"], "--token", "s3cret-token", "--profile", "team"); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "routine.yaml"), greetV1)
	writeFile(t, filepath.Join(src, "notes.txt"), "n\n")
	if code, _, errOut := run("push", src); code != 2 || !strings.Contains(errOut, "--profile NAME") {
		t.Fatalf("push without a server or profile: exit %d %s", code, errOut)
	}
	if code, out, errOut := run("--profile", "team", "push", src); code != 0 || !strings.Contains(out, "greet: revision") {
		t.Fatalf("push through the profile: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run("--profile", "team", "revisions", "greet"); code != 0 || !strings.Contains(out, "*") || strings.Contains(out+errOut, "s3cret-token") {
		t.Fatalf("revisions through the profile: exit %d\n%s%s", code, out, errOut)
	}

	// A secret set on the server lives in the deployment's vault; a run on
	// the worker resolves it; nothing shows its value.
	if code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, env), Stdin: strings.NewReader("v4lue-of-api-key")}, "--profile", "team", "secrets", "set", "API_KEY"); code != 0 {
		t.Fatalf("secrets set: exit %d\n%s%s", code, out, errOut)
	}
	keyed := t.TempDir()
	writeFile(t, filepath.Join(keyed, "routine.yaml"), "name: keyed\nsecrets: [API_KEY]\nsteps:\n  - id: use\n    run: '[ \"{{API_KEY}}\" = v4lue-of-api-key ] && echo the key works && echo {{API_KEY}}'\n")
	if code, out, errOut := run("--profile", "team", "push", keyed); code != 0 {
		t.Fatalf("push keyed: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run("--profile", "team", "invoke", "keyed", "--wait")
	if code != 0 || !strings.Contains(out, "the key works") || !strings.Contains(out, "***") {
		t.Fatalf("a run using the deployment's secret: exit %d\n%s%s\nworker: %s", code, out, errOut, d.worker.Out.String())
	}
	for _, o := range []string{out, errOut, d.server.Out.String(), d.worker.Out.String()} {
		if strings.Contains(o, "v4lue-of-api-key") {
			t.Fatal("the secret's value was shown")
		}
	}
}
