package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

// repoRoot is the top of the repository: the Dockerfile's build context,
// and the compose file's (..).
const repoRoot = ".."

// imageUser is the user the image runs as (the Dockerfile's USER): the
// Kubernetes manifests must run as the same one.
const imageUser = 10001

// needEnv is what every server and worker is given in the environment by
// each way of deploying; ROUTINES_BOOTSTRAP_TOKEN is the admin token a
// first server stores.
var needEnv = []string{"ROUTINES_DB", "ROUTINES_MASTER_KEY", "ROUTINES_BOOTSTRAP_TOKEN"}

// minDrainMargin is how much longer than a worker's --grace its
// supervisor (Docker, systemd, the kubelet) must wait before it kills
// it: the time to put back in the queue the runs the grace cut short.
const minDrainMargin = 10 * time.Second

// checkCommandLine runs args (a server or worker command line of a
// deployment file) through the binary's own flags, with --help so that
// nothing starts: an unknown flag or a bad value fails, as it would fail
// the deployment. It returns the value of --grace (30s when not given).
func checkCommandLine(t *testing.T, where string, args []string) (grace time.Duration) {
	t.Helper()
	if len(args) == 0 || (args[0] != "server" && args[0] != "worker") {
		t.Errorf("%s: command %q: want routines server or routines worker", where, args)
		return 0
	}
	if code, _, errOut := clitest.RunCLI(t, append(slices.Clone(args), "--help")...); code != 0 {
		t.Errorf("%s: routines %s: exit %d: %s", where, strings.Join(args, " "), code, errOut)
	}
	grace = 30 * time.Second
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--grace=")
		if a == "--grace" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Errorf("%s: --grace %q: %v", where, v, err)
			}
			grace = d
		}
	}
	return grace
}

// checkStopWait fails unless a supervisor's wait before it kills a
// process (stop) leaves a worker its grace and minDrainMargin.
func checkStopWait(t *testing.T, where string, grace, stop time.Duration) {
	t.Helper()
	if stop < grace+minDrainMargin {
		t.Errorf("%s: the worker is killed %s after SIGTERM, but drains for --grace %s: want at least %s, or runs cut short may not be back in the queue",
			where, stop, grace, grace+minDrainMargin)
	}
}

// readEnvFile reads KEY=VALUE lines, # comments and blank lines skipped.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Errorf("%s:%d: %q is not KEY=VALUE", path, n, line)
			continue
		}
		if _, dup := env[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, n, k)
		}
		env[k] = v
	}
	return env
}

// TestSystemdUnits verifies the units with systemd-analyze in a root of
// their own, which holds what they refer to (the binary, /bin/kill) and
// the system's units (the targets they are ordered against), and fails on
// anything it says: it reports unknown keys and bad values as warnings,
// with exit 0. Each ExecStart is parsed by the binary's flags.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed: .ci/run installs systemd")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd): the units are not verified")
	}
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) != 2 {
		t.Fatalf("want the server and worker units in systemd/, found %v (%v)", units, err)
	}
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system", "usr/local/bin", "bin", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/local/bin/routines"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/kill"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("cp", "-r", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).Run(); err != nil {
		t.Fatalf("copy the system's units: %v", err)
	}
	var names []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system", filepath.Base(u)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(u)
		if strings.HasSuffix(name, "@.service") {
			name = strings.TrimSuffix(name, "@.service") + "@1.service"
		}
		names = append(names, name)
		checkUnit(t, u, string(data))
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--root=" + root}, names...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(names, " "), err, out)
	}
}

// checkUnit checks what systemd-analyze does not: the command line, the
// stop timeout against the drain, and the environment the unit gives.
func checkUnit(t *testing.T, path, unit string) {
	t.Helper()
	keys := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(unit, "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	if len(keys["ExecStart"]) != 1 {
		t.Fatalf("%s: want one ExecStart, got %q", path, keys["ExecStart"])
	}
	exec := strings.Fields(keys["ExecStart"][0])
	if exec[0] != "/usr/local/bin/routines" {
		t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/routines", path, exec[0])
	}
	// %i is the instance: 1 in the checks.
	args := strings.Fields(strings.ReplaceAll(strings.Join(exec[1:], " "), "%i", "1"))
	grace := checkCommandLine(t, path, args)
	stop, err := time.ParseDuration(strings.Join(keys["TimeoutStopSec"], ""))
	if err != nil {
		t.Errorf("%s: TimeoutStopSec %q: %v", path, keys["TimeoutStopSec"], err)
	}
	checkStopWait(t, path, grace, stop)
	if args[0] == "worker" && strings.Join(keys["KillMode"], "") != "mixed" {
		t.Errorf("%s: KillMode %q: want mixed, so that SIGTERM goes to the worker alone and its running steps go on while it drains", path, keys["KillMode"])
	}
	if u := strings.Join(keys["User"], ""); u == "" || u == "root" {
		t.Errorf("%s: User %q: want the user routines", path, u)
	}
	// The environment file gives the rest of needEnv; the master key comes
	// as a credential.
	if !slices.Contains(keys["Environment"], "ROUTINES_MASTER_KEY_FILE=%d/master.key") || !slices.Contains(keys["LoadCredential"], "master.key:/etc/routines/master.key") {
		t.Errorf("%s: want the master key as the credential master.key, named by ROUTINES_MASTER_KEY_FILE", path)
	}
	env := readEnvFile(t, "systemd/routines.env.example")
	for _, k := range needEnv {
		if _, ok := env[k]; !ok && k != "ROUTINES_MASTER_KEY" {
			t.Errorf("systemd/routines.env.example: %s is not set, which %s needs", k, path)
		}
	}
}

// TestDockerfile checks what a build would find out: the build copies
// every file the binary is built from (the packages and embedded files
// of cmd/routines, none of them left out by Dockerfile.dockerignore), the
// image runs as a user other than root, and the binary does not pull in
// the Kubernetes types these tests decode with.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, "Dockerfile")
	final := stages[len(stages)-1]
	user := final.last("USER")
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		t.Errorf("Dockerfile: the image runs as %q: want a USER other than root", user)
	}
	if user != fmt.Sprintf("%d:%d", imageUser, imageUser) {
		t.Errorf("Dockerfile: USER %s, want %d:%d as the Kubernetes manifests say", user, imageUser, imageUser)
	}
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var copied []string
	for _, s := range stages {
		for _, c := range s.all("COPY") {
			f := strings.Fields(c)
			if strings.HasPrefix(f[0], "--from=") {
				continue
			}
			for _, src := range f[:len(f)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("Dockerfile: COPY %s: not in the build context: %v", src, err)
				}
				if !bytes.Contains(ignore, []byte("\n!"+strings.TrimSuffix(src, "/"))) {
					t.Errorf("Dockerfile.dockerignore leaves %s out of the context, which COPY needs: add !%s", src, src)
				}
				copied = append(copied, strings.TrimSuffix(src, "/"))
			}
		}
	}
	for _, tool := range []string{"bash", "ca-certificates", "coreutils", "curl", "git", "jq", "tini"} {
		if !regexp.MustCompile(`apk add [^&]*\b` + tool + `\b`).MatchString(final.text()) {
			t.Errorf("Dockerfile: the image lacks %s", tool)
		}
	}

	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}|{{if .Module}}{{.Module.Path}}{{end}}|{{.Dir}}|{{join .EmbedFiles ","}}`, "../cmd/routines")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, _ := filepath.Abs(repoRoot)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		path, mod, dir, embeds := f[0], f[1], f[2], f[3]
		if strings.HasPrefix(path, "k8s.io/") || strings.HasPrefix(path, "sigs.k8s.io/") {
			t.Errorf("the binary imports %s: the Kubernetes types are for these tests only", path)
		}
		if mod != "github.com/routines-dev/routines" {
			continue
		}
		rel, err := filepath.Rel(abs, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !slices.Contains(copied, top) {
			t.Errorf("Dockerfile: package %s is in %s, which no COPY brings into the build", path, top)
		}
		for _, e := range strings.Split(embeds, ",") {
			if strings.HasSuffix(e, "_test.go") || strings.Contains("/"+e, "/testdata/") || strings.Contains("/"+e, "/.routines/") {
				t.Errorf("package %s embeds %s, which Dockerfile.dockerignore leaves out", path, e)
			}
		}
	}
}

// dockerStage is one stage of a Dockerfile: its instructions, each a
// keyword and its arguments, continuation lines joined.
type dockerStage [][2]string

func (s dockerStage) all(keyword string) []string {
	var out []string
	for _, in := range s {
		if in[0] == keyword {
			out = append(out, in[1])
		}
	}
	return out
}

func (s dockerStage) last(keyword string) string {
	all := s.all(keyword)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

func (s dockerStage) text() string {
	var b strings.Builder
	for _, in := range s {
		b.WriteString(in[0] + " " + in[1] + "\n")
	}
	return b.String()
}

// parseDockerfile splits a Dockerfile into its stages.
func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(trimmed)
		keyword, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		keyword = strings.ToUpper(keyword)
		if keyword == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if keyword != "ARG" {
				t.Fatalf("%s: %s before the first FROM", path, keyword)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], [2]string{keyword, strings.TrimSpace(args)})
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and the image's", path, len(stages))
	}
	return stages
}
