package cli_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
)

// The ceilings of a namespace against a real server and two workers on
// PostgreSQL: past max_queued a run of the namespace is refused with 429,
// and with max_running 1 no two of its runs execute at once across the
// fleet, while another namespace's are held back by neither.
func TestNamespaceCeilings(t *testing.T) {
	t.Parallel()
	d := setupTeams(t)
	deployA, deployB := d.newToken(t, "deploy-a", "deployer", "team-a"), d.newToken(t, "deploy-b", "deployer", "team-b")
	src := t.TempDir()
	for _, name := range []string{"a-one", "a-two", "b-one"} {
		writeFile(t, filepath.Join(src, name, "routine.yaml"), "name: "+name+"\nsteps:\n  - id: s\n    run: sleep 0.5\n")
		token := map[byte]string{'a': deployA, 'b': deployB}[name[0]]
		if code, out, errOut := d.as(t, token, "push", filepath.Join(src, name)); code != 0 {
			t.Fatalf("push %s = %d %s %s", name, code, out, errOut)
		}
	}
	set := func(args ...string) api.Namespace {
		t.Helper()
		code, out, errOut := d.as(t, teamsAdmin, append([]string{"namespaces", "set", "team-a", "-o", "json"}, args...)...)
		var ns api.Namespace
		if code != 0 || json.Unmarshal([]byte(out), &ns) != nil {
			t.Fatalf("namespaces set %v = %d %s %s", args, code, out, errOut)
		}
		return ns
	}
	if code, _, errOut := d.as(t, teamsAdmin, "namespaces", "set", "team-a", "--max-running", "-1"); code == 0 || !strings.Contains(errOut, "want 0 or more") {
		t.Errorf("namespaces set --max-running -1 = %d %s; want refused, saying it wants 0 or more", code, errOut)
	}
	// Each set keeps what it does not name.
	set("--max-running", "1")
	if ns := set("--max-queued", "1"); ns.MaxRunning != 1 || ns.MaxQueued != 1 {
		t.Fatalf("after --max-queued 1: %+v, want max_running kept at 1", ns)
	}
	if code, out, _ := d.as(t, teamsAdmin, "namespaces", "list"); code != 0 || !strings.Contains(out, "MAX RUNNING") || !strings.Contains(out, "team-a") {
		t.Errorf("namespaces list = %d %s; want team-a with its ceilings", code, out)
	}

	// No worker yet: what is queued stays queued.
	run := func(token, routine string) (int, string) {
		t.Helper()
		return apiCall(t, d.base, token, "POST", "/v1/routines/"+routine+"/runs", "{}")
	}
	ids := map[string]string{} // run id → the token that sees it
	queued := func(token, routine string) {
		t.Helper()
		code, body := run(token, routine)
		var q api.Queued
		if code != http.StatusAccepted || json.Unmarshal([]byte(body), &q) != nil {
			t.Fatalf("run %s = %d %s, want 202", routine, code, body)
		}
		ids[q.RunID] = token
	}
	queued(deployA, "a-one")
	if code, body := run(deployA, "a-two"); code != http.StatusTooManyRequests ||
		!strings.Contains(body, "namespace team-a is at its ceiling of 1 queued runs") {
		t.Errorf("a second queued run of team-a = %d %s; want 429 naming team-a and its ceiling", code, body)
	}
	for range 3 {
		queued(deployB, "b-one") // team-b has no ceiling
	}
	// Queued beyond the first through a raised ceiling, the runs of
	// team-a then execute one at a time on four slots.
	set("--max-queued", "0")
	queued(deployA, "a-two")
	queued(deployA, "a-one")
	d.start(t, "worker", "--slots", "2")
	d.start(t, "worker", "--slots", "2")

	runs := map[string]*routine.Run{}
	deadline := time.Now().Add(30 * time.Second)
	for id, token := range ids {
		for {
			code, body := apiCall(t, d.base, token, "GET", "/v1/runs/"+id, "")
			var r routine.Run
			if code == 200 && json.Unmarshal([]byte(body), &r) == nil && r.State.Final() {
				if r.State != routine.StateSucceeded || r.StartedAt == nil || r.FinishedAt == nil {
					t.Fatalf("run %s of %s: %s", id, r.Routine, body)
				}
				runs[id] = &r
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s not done: %d %s", id, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	most := map[string]int{}
	for _, r := range runs {
		ns := r.Routine[:1]
		n := 0
		for _, o := range runs {
			if o.Routine[:1] == ns && !o.StartedAt.After(*r.StartedAt) && o.FinishedAt.After(*r.StartedAt) {
				n++ // running when r started
			}
		}
		most[ns] = max(most[ns], n)
	}
	if most["a"] != 1 {
		t.Errorf("up to %d runs of team-a executed at once, want 1 (max_running)", most["a"])
	}
	if most["b"] < 2 {
		t.Errorf("up to %d runs of team-b executed at once on four slots, want more: team-a's ceiling held it back", most["b"])
	}
	t.Logf("most runs at once by namespace: %v", most)
}
