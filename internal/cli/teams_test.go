package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/pgtest"
)

// The security proof of issue 14 against a real server and worker on
// PostgreSQL: roles, namespaces answering 404, expired and revoked
// tokens, events kept to their namespace, the region policy, and the
// trail of every action.
func TestTeamsSecurity(t *testing.T) {
	t.Parallel()
	const admin = teamsAdmin
	d := setupTeams(t)
	// A second replica, which caches tokens of its own.
	replica := d.start(t, "server", "--addr", "127.0.0.1:0")
	d.start(t, "worker", "--slots", "2", "--region", "eu-west")
	base := d.base
	as := func(token string, args ...string) (int, string, string) {
		t.Helper()
		return d.as(t, token, args...)
	}
	newToken := func(name, role, ns string, extra ...string) string {
		t.Helper()
		return d.newToken(t, name, role, ns, extra...)
	}
	callAt := func(base, token, method, path, body string) (int, string) {
		t.Helper()
		return apiCall(t, base, token, method, path, body)
	}
	call := func(token, method, path, body string) (int, string) {
		t.Helper()
		return callAt(base, token, method, path, body)
	}

	deployA, deployB := newToken("deploy-a", "deployer", "team-a"), newToken("deploy-b", "deployer", "team-b")
	viewA := newToken("view-a", "viewer", "team-a")
	shortLived := newToken("short", "invoker", "team-a", "--expires", "1s")
	revoked := newToken("gone", "invoker", "team-a")
	if code, out, errOut := as(admin, "namespaces", "set", "team-a", "--regions", "eu-west,eu-central"); code != 0 {
		t.Fatalf("namespaces set = %d %s %s", code, out, errOut)
	}

	src := t.TempDir()
	const ping = "  - event:\n      name: ping\n"
	writeFile(t, filepath.Join(src, "a", "job", "routine.yaml"), "name: a-job\nregion: eu-west\ntriggers:\n"+ping+"steps:\n  - id: s\n    run: echo a\n")
	writeFile(t, filepath.Join(src, "a", "far", "routine.yaml"), "name: a-far\nregion: us-east\nsteps:\n  - id: s\n    run: echo far\n")
	writeFile(t, filepath.Join(src, "b", "job", "routine.yaml"), "name: b-job\ntriggers:\n"+ping+"steps:\n  - id: s\n    run: echo b\n")
	if code, out, errOut := as(deployA, "push", filepath.Join(src, "a", "job")); code != 0 {
		t.Fatalf("push a-job = %d %s %s", code, out, errOut)
	}
	if code, out, errOut := as(deployB, "push", filepath.Join(src, "b", "job")); code != 0 {
		t.Fatalf("push b-job = %d %s %s", code, out, errOut)
	}
	// A push to a region outside the namespace's policy is refused, with why.
	if code, _, errOut := as(deployA, "push", filepath.Join(src, "a", "far")); code == 0 || !strings.Contains(errOut, "outside the regions of namespace team-a") {
		t.Errorf("push of a us-east routine to team-a = %d %s; want refused by the region policy", code, errOut)
	}

	// A viewer reads, and cannot push, invoke or read secret names.
	if code, body := call(viewA, "GET", "/v1/routines", ""); code != 200 || !strings.Contains(body, "a-job") || strings.Contains(body, "b-job") {
		t.Errorf("viewer GET /v1/routines = %d %s; want team-a's routines only", code, body)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/routines"}, {"POST", "/v1/routines/a-job/runs"}, {"GET", "/v1/secrets"},
	} {
		if code, body := call(viewA, c.method, c.path, "{}"); code != http.StatusForbidden {
			t.Errorf("viewer %s %s = %d %s; want 403", c.method, c.path, code, body)
		}
	}

	// An event sent to team-b starts b-job only; team-a's token starts a-job only.
	code, body := call(deployB, "POST", "/v1/events/ping", "{}")
	var res api.EventResult
	if code != 202 || json.Unmarshal([]byte(body), &res) != nil || len(res.Runs) != 1 || res.Runs[0].Routine != "b-job" {
		t.Fatalf("event ping to team-b = %d %s; want one run, of b-job", code, body)
	}
	bRun := res.Runs[0].RunID
	if code, body := call(deployA, "POST", "/v1/events/ping", "{}"); code != 202 || !strings.Contains(body, "a-job") || strings.Contains(body, "b-job") {
		t.Errorf("event ping to team-a = %d %s; want a-job's run only", code, body)
	}

	// team-a's token finds nothing of team-b's: 404, as what does not exist.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/routines/b-job/revisions"}, {"POST", "/v1/routines/b-job/runs"},
		{"POST", "/v1/routines/b-job/rollback"}, {"GET", "/v1/runs/" + bRun}, {"POST", "/v1/runs/" + bRun + "/cancel"},
	} {
		if code, body := call(deployA, c.method, c.path, `{"revision":"x"}`); code != http.StatusNotFound {
			t.Errorf("team-a %s %s = %d %s; want 404", c.method, c.path, code, body)
		}
	}
	if code, body := call(deployA, "GET", "/v1/runs?limit=100", ""); code != 200 || strings.Contains(body, bRun) || strings.Contains(body, "b-job") {
		t.Errorf("team-a GET /v1/runs = %d %s; want none of team-b's runs", code, body)
	}
	// Secrets are per namespace: each team sets, lists and removes its
	// own; the same name in two namespaces is two secrets; a run resolves
	// its namespace's only, and never the operators' or the worker's
	// environment.
	setSecret := func(token, name, value string) {
		t.Helper()
		env := map[string]string{"ROUTINES_SERVER": base, "ROUTINES_TOKEN": token}
		if code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, env), Stdin: strings.NewReader(value)}, "secrets", "set", name); code != 0 {
			t.Fatalf("secrets set %s = %d %s %s", name, code, out, errOut)
		}
	}
	setSecret(deployA, "API_KEY", "a-value-of-api-key")
	setSecret(deployA, "ONLY_A", "only-a-value")
	setSecret(deployB, "API_KEY", "b-value-of-api-key")
	setSecret(admin, "OPS_KEY", "operators-value")
	for token, want := range map[string][]string{deployA: {"API_KEY", "ONLY_A"}, deployB: {"API_KEY"}, admin: {"OPS_KEY"}} {
		code, body := call(token, "GET", "/v1/secrets", "")
		var list []api.Secret
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != len(want) {
			t.Fatalf("GET /v1/secrets = %d %s; want %v", code, body, want)
		}
		for i, sec := range list {
			if sec.Name != want[i] || sec.Version != 1 {
				t.Errorf("GET /v1/secrets: %+v, want %s at version 1", sec, want[i])
			}
		}
	}
	if code, body := call(deployB, "DELETE", "/v1/secrets/ONLY_A", ""); code != http.StatusNotFound {
		t.Errorf("team-b DELETE team-a's secret = %d %s; want 404", code, body)
	}
	uses := func(name, secret, value string) string {
		return "name: " + name + "\nregion: eu-west\nsecrets: [" + secret + "]\nsteps:\n  - id: use\n    run: '[ \"{{" + secret + "}}\" = " + value + " ] && echo matches'\n"
	}
	writeFile(t, filepath.Join(src, "a", "key", "routine.yaml"), uses("a-key", "API_KEY", "a-value-of-api-key"))
	writeFile(t, filepath.Join(src, "a", "ops", "routine.yaml"), uses("a-ops", "OPS_KEY", "operators-value"))
	writeFile(t, filepath.Join(src, "a", "env", "routine.yaml"),
		"name: a-env\nregion: eu-west\nsecrets:\n  - { name: HOME_DIR, from: \"env:HOME\" }\nsteps:\n  - id: use\n    run: echo {{HOME_DIR}}\n")
	for _, name := range []string{"key", "ops"} {
		if code, out, errOut := as(deployA, "push", filepath.Join(src, "a", name)); code != 0 {
			t.Fatalf("push a-%s = %d %s %s", name, code, out, errOut)
		}
	}
	// A routine that asks for the worker's environment is refused at its
	// push, saying why.
	if code, _, errOut := as(deployA, "push", filepath.Join(src, "a", "env")); code == 0 ||
		!strings.Contains(errOut, "a routine of namespace team-a resolves secrets only from its namespace's builtin vault") {
		t.Errorf("push of a routine with from: env: to team-a = %d %s; want refused", code, errOut)
	}
	for routine, want := range map[string]string{
		"a-key": "matches",
		"a-ops": "secret OPS_KEY is not set in namespace team-a",
	} {
		code, out, errOut := as(deployA, "invoke", routine, "--wait")
		if !strings.Contains(out+errOut, want) || (code == 0) != (want == "matches") {
			t.Errorf("invoke %s = %d %s %s; want %q", routine, code, out, errOut, want)
		}
	}
	// Costs are of the caller's namespace's routines: team-a's runs, never
	// team-b's (whose b-job ran above).
	for token, c := range map[string]struct{ has, hasNot string }{deployA: {"a-key", "b-job"}, deployB: {"b-job", "a-key"}} {
		code, body := call(token, "GET", "/v1/costs?by=routine", "")
		if code != 200 || !strings.Contains(body, c.has) || strings.Contains(body, c.hasNot) {
			t.Errorf("GET /v1/costs = %d %s; want %s's costs, none of %s", code, body, c.has, c.hasNot)
		}
	}

	// Revoked and expired tokens fail at once, on every replica: the
	// replica that cached the token hears of the revocation through the
	// store, well before its cache would expire it (a second).
	for _, b := range []string{base, "http://" + replica.Addr} {
		if code, _ := callAt(b, revoked, "GET", "/v1/routines", ""); code != 200 {
			t.Fatalf("a fresh token at %s = %d, want 200", b, code)
		}
	}
	if code, out, errOut := as(admin, "tokens", "revoke", "gone"); code != 0 || !strings.Contains(out, "revoked token gone") {
		t.Fatalf("tokens revoke = %d %s %s", code, out, errOut)
	}
	revokedAt := time.Now()
	if code, body := call(revoked, "GET", "/v1/routines", ""); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("a revoked token = %d %s; want 401, revoked", code, body)
	}
	for {
		code, body := callAt("http://"+replica.Addr, revoked, "GET", "/v1/routines", "")
		if code == http.StatusUnauthorized && strings.Contains(body, "revoked") {
			break
		}
		if time.Since(revokedAt) > 300*time.Millisecond {
			t.Fatalf("the replica still takes a revoked token %v after its revocation: %d %s", time.Since(revokedAt), code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, body := call(shortLived, "GET", "/v1/routines", ""); code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("an expired token = %d %s; want 401, expired", code, body)
	}
	// tokens list shows no value.
	if code, out, _ := as(admin, "tokens", "list"); code != 0 || strings.Contains(out, "rt_") || !strings.Contains(out, "deploy-a") {
		t.Errorf("tokens list = %d %s; want names, never values", code, out)
	}

	// Every action is in the trail, with who, what and how it ended.
	code, out, errOut := as(admin, "audit", "-o", "json")
	var trail []api.Action
	if code != 0 || json.Unmarshal([]byte(out), &trail) != nil {
		t.Fatalf("audit = %d %s %s", code, out, errOut)
	}
	seen := map[string]bool{}
	for _, a := range trail {
		seen[a.Actor+" "+a.Action+" "+a.Target+" "+a.Outcome] = true
		if a.Source != "127.0.0.1" || a.Namespace == "" || a.Role == "" {
			t.Errorf("record %+v: want its source, role and namespace", a)
		}
		for _, v := range []string{deployA, deployB, viewA, admin, revoked, "a-value-of-api-key", "b-value-of-api-key", "only-a-value", "operators-value"} {
			if strings.Contains(a.Detail, v) || strings.Contains(a.Target, v) {
				t.Errorf("record %+v holds a token's value", a)
			}
		}
	}
	for _, want := range []string{
		"bootstrap token.create deploy-a ok", "bootstrap namespace.set team-a ok",
		"deploy-a push a-job ok", "deploy-b push b-job ok", "deploy-a push a-far failed",
		"view-a push  denied", "view-a invoke a-job denied", "view-a secret.list  denied",
		"deploy-b event ping ok", "deploy-a invoke b-job failed", "deploy-a cancel " + bRun + " failed",
		"bootstrap token.revoke gone ok", "deploy-a secret.set API_KEY ok", "deploy-b secret.set API_KEY ok",
		"deploy-b secret.delete ONLY_A failed", "bootstrap secret.set OPS_KEY ok", "deploy-a push a-env failed",
	} {
		if !seen[want] {
			t.Errorf("the trail has no %q; it has %v", want, seen)
		}
	}
}

// teamsAdmin is the bootstrap token of the deployments of setupTeams.
const teamsAdmin = "bootstrap-admin-0123456789abcdef"

// teams is a deployment on a database of its own with a server whose
// bootstrap token is teamsAdmin, and the means to act on it as one token
// or another.
type teams struct {
	db   string
	deps cli.Deps
	base string // the server's URL
}

func setupTeams(t *testing.T) *teams {
	t.Helper()
	d := &teams{db: pgtest.StartServer(t).Database(t),
		deps: cli.Deps{Getenv: secretEnv(t, map[string]string{"ROUTINES_BOOTSTRAP_TOKEN": teamsAdmin})}}
	d.base = "http://" + d.start(t, "server", "--addr", "127.0.0.1:0").Addr
	return d
}

// start starts another process of the deployment: a server or a worker.
func (d *teams) start(t *testing.T, role string, args ...string) *clitest.Daemon {
	t.Helper()
	return clitest.StartRemoteWith(t, d.deps, role, append(deploymentArgs(t, d.db), args...)...)
}

// as runs the command line against the server with token.
func (d *teams) as(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{"ROUTINES_SERVER": d.base, "ROUTINES_TOKEN": token}
	return clitest.RunCLIWith(t, cli.Deps{Getenv: secretEnv(t, env)}, args...)
}

// newToken has the admin create a token and returns its value.
func (d *teams) newToken(t *testing.T, name, role, ns string, extra ...string) string {
	t.Helper()
	code, out, errOut := d.as(t, teamsAdmin, append([]string{"tokens", "create", "--name", name, "--role", role, "--namespace", ns}, extra...)...)
	if code != 0 || !strings.HasPrefix(out, "rt_") {
		t.Fatalf("tokens create %s = %d %q %s", name, code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// apiCall calls the API at base with token and returns the status and body.
func apiCall(t *testing.T, base, token, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
