package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
)

// handoffRoutine keeps an artifact in its first step; its second step
// fails its first try and waits 3s for the next one in the queue, and
// then reads the artifact.
const handoffRoutine = `name: handoff
steps:
  - id: build
    run: echo "built by the first worker" > "$ROUTINES_ARTIFACTS/report.txt"
    artifacts: []
  - id: use
    run: '[ "$ROUTINES_ATTEMPT" -gt 1 ] || exit 1; cat "$ROUTINES_ARTIFACTS_IN/build/report.txt"'
    retry: { attempts: 2, backoff: constant, initial: 3s }
`

// A run whose first step ran on one worker resumes on another, which
// finds that step's artifact through --artifacts postgres.
func TestRemoteArtifactsFollowTheRun(t *testing.T) {
	t.Parallel()
	db := pgtest.StartServer(t).Database(t)
	dir := t.TempDir()
	deps := cli.Deps{Getenv: secretEnv(t, nil)}
	common := func(name string) []string {
		return []string{"--db", db, "--cache-dir", filepath.Join(dir, name, "cache"), "--work-dir", filepath.Join(dir, name, "work"),
			"--poll", "100ms", "--grace", "5s", "--artifacts", "postgres", "--requeue-after", "100ms"}
	}
	srv := clitest.StartRemoteWith(t, deps, "server", append(common("server"), "--addr", "127.0.0.1:0", "--token", "s3cret-token")...)
	first := clitest.StartRemoteWith(t, deps, "worker", append(common("first"), "--slots", "2")...)
	d := &deployment{server: srv, worker: first, env: map[string]string{"ROUTINES_SERVER": "http://" + srv.Addr, "ROUTINES_TOKEN": "s3cret-token"}}
	src := filepath.Join(t.TempDir(), "handoff")
	writeFile(t, filepath.Join(src, "routine.yaml"), handoffRoutine)
	if code, out, errOut := d.routines(t, "push", src); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}

	type result struct {
		code     int
		out, err string
	}
	invoked := make(chan result, 1)
	go func() {
		code, out, errOut := d.routines(t, "invoke", "handoff", "--wait", "--server", d.env["ROUTINES_SERVER"])
		invoked <- result{code, out, errOut}
	}()
	// The first worker ran build, then put the run back in the queue for
	// use's retry: it stops, and another takes the run.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(first.Out.String(), "run requeued for a retry"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first worker did not requeue the run:\n%s", first.Out.String())
		}
	}
	if code := first.Stop(); code != 0 {
		t.Fatalf("first worker: exit %d\n%s", code, first.Out.String())
	}
	second := clitest.StartRemoteWith(t, deps, "worker", append(common("second"), "--slots", "2")...)

	var r result
	select {
	case r = <-invoked:
	case <-time.After(30 * time.Second):
		t.Fatalf("the run did not end:\nsecond worker: %s", second.Out.String())
	}
	if r.code != 0 || !strings.Contains(r.out, "built by the first worker") {
		t.Fatalf("invoke: exit %d\n%s%s\nsecond worker: %s", r.code, r.out, r.err, second.Out.String())
	}
	m := regexp.MustCompile(`run (\w+) queued`).FindStringSubmatch(r.out + r.err)
	if m == nil {
		t.Fatalf("no run id in %s%s", r.out, r.err)
	}
	// The artifact came to the second worker's workspace from the store.
	got, err := os.ReadFile(filepath.Join(dir, "second", "work", "runs", m[1], "artifacts", "build", "report.txt"))
	if err != nil || string(got) != "built by the first worker\n" {
		t.Fatalf("the second worker's copy: %q, %v", got, err)
	}
	if !strings.Contains(r.out, "fetched 1 artifact(s) of step(s) build from the artifact store") {
		t.Fatalf("the run's log does not tell of the fetch:\n%s", r.out)
	}
}

// --artifacts refuses what it cannot open, saying what it takes.
func TestRemoteArtifactsFlag(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "deployment.db")
	for _, tc := range []struct{ value, want string }{
		{"postgres", "the store of --db is not PostgreSQL"},
		{"local:", "write local:/shared/dir"},
		{"ftp://host/dir", "want local:/shared/dir, postgres, or s3://bucket/prefix"},
	} {
		code, _, errOut := clitest.RunCLI(t, "worker", "--db", db, "--work-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--artifacts", tc.value)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("--artifacts %s: exit %d %s; want 2 and %q", tc.value, code, errOut, tc.want)
		}
	}
}
