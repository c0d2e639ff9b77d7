package cli_test

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

// A routine with a region runs only on a worker of that region: a worker
// of another region leaves it queued, show says why, and a worker of the
// region started later runs it.
func TestRemoteRegionWaitsForItsWorker(t *testing.T) {
	t.Parallel()
	onEachStore(t, regionWaitsForItsWorker)
}

var queuedRun = regexp.MustCompile(`run (\S+) queued · `)

func regionWaitsForItsWorker(t *testing.T, db string) {
	d := startDeployment(t, db, "--region", "us-east", "--labels", "gpu")
	if !strings.Contains(d.worker.Out.String(), "region us-east, label gpu") {
		t.Fatalf("the worker's up line does not name its placement: %s", d.worker.Out.String())
	}
	d.env["XDG_CONFIG_HOME"] = t.TempDir()
	if code, out, errOut := d.routines(t, "login", d.env["ROUTINES_SERVER"]); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	d.env["ROUTINES_PROFILE"] = "default"
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "eu", "routine.yaml"), "name: eu\nregion: eu-west\nsteps:\n  - id: hi\n    run: echo \"hello from the eu\"\n")
	writeFile(t, filepath.Join(src, "anywhere", "routine.yaml"), "name: anywhere\nsteps:\n  - id: hi\n    run: echo anywhere\n")
	if code, out, errOut := d.routines(t, "push", src); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut := d.routines(t, "invoke", "eu")
	m := queuedRun.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("invoke eu: exit %d\n%s%s", code, out, errOut)
	}
	eu := m[1]
	// A run queued after it, that any worker may take, runs on the us-east
	// worker: its claim, oldest first, stepped over the eu run.
	if code, out, errOut := d.routines(t, "invoke", "anywhere", "--wait"); code != 0 || !strings.Contains(out, "anywhere") {
		t.Fatalf("invoke anywhere: exit %d\n%s%s\nworker: %s", code, out, errOut, d.worker.Out.String())
	}
	code, out, errOut = d.routines(t, "show", eu)
	if code != 0 || !strings.Contains(out, "state     queued") || !strings.Contains(out, "requires  region eu-west\n") ||
		!regexp.MustCompile(`waiting   no live worker has region eu-west \(live: \S+ \(region us-east, label gpu\)\): `+
			`start one with: routines worker --db URL --region eu-west\n`).MatchString(out) {
		t.Fatalf("show of the eu run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = d.routines(t, "show", eu, "-o", "json")
	var detail api.RunDetail
	if code != 0 || json.Unmarshal([]byte(out), &detail) != nil || !strings.HasPrefix(detail.Waiting, "no live worker has region eu-west") ||
		detail.Requires.Region != "eu-west" {
		t.Fatalf("show -o json of the eu run: exit %d\n%s", code, out)
	}

	// A worker of the region, started later, runs it.
	clitest.StartRemote(t, "worker", append(deploymentArgs(t, db), "--region", "eu-west")...)
	if code, out, errOut := d.routines(t, "logs", "-f", eu); code != 0 || !strings.Contains(out, "hello from the eu") {
		t.Fatalf("logs -f of the eu run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = d.routines(t, "show", eu)
	if code != 0 || !strings.Contains(out, "state     succeeded") || !regexp.MustCompile(`worker    \S+ \(region eu-west\)\n`).MatchString(out) ||
		strings.Contains(out, "waiting") {
		t.Fatalf("show of the eu run once run: exit %d\n%s%s", code, out, errOut)
	}
}

// A worker's --region and --labels are spelt as a routine's region: and
// labels: are; a server takes them only for its --workers.
func TestRemotePlacementFlags(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "deployment.db")
	common := deploymentArgs(t, db)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"worker", "--region", "EU West"}, common...), `--region "EU West": want lower-case letters, digits and dashes`},
		{append([]string{"worker", "--labels", "gpu,-ssd"}, common...), `--labels: label "-ssd": want lower-case letters`},
		{append([]string{"server", "--addr", "127.0.0.1:0", "--region", "eu-west"}, common...), "--region and --labels are those of the server's --workers, and it has none"},
	} {
		code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, nil)}, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("routines %s: exit %d\n%s%s\nwant exit 2 and %q", strings.Join(tc.args[:3], " "), code, out, errOut, tc.want)
		}
	}
}
