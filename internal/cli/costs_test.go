package cli_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/cost"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// costServer stands in for the Messages API, answering every call with 40
// input and 10 output tokens of claude-x-1, and for a service whose /ping
// answers 10000 bytes.
func costServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/ping" {
			io.WriteString(w, strings.Repeat("p", 10000))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x-1","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":40,"output_tokens":10}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// llmRoutine is a routine tagged tags whose one step asks the model at api.
func llmRoutine(name, tags, api string) string {
	return "name: " + name + "\ntags: [" + tags + "]\nsecrets: [LLM_KEY]\nsteps:\n" +
		"  - id: ask\n    llm: { model: claude-x, api_key: \"{{LLM_KEY}}\", base_url: \"" + api + "\", prompt: \"Say ok\" }\n"
}

// TestCostsGolden runs routines with exact usage — tokens from a model,
// the bytes of an http call, no CPU (built-in steps) — and shows their
// costs by tag and by routine from the project's store.
func TestCostsGolden(t *testing.T) {
	t.Parallel()
	srv := costServer(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ask", "routine.yaml"), llmRoutine("ask", "prod, ai", srv.URL))
	writeFile(t, filepath.Join(dir, "ping", "routine.yaml"), "name: ping\ntags: [prod]\nsteps:\n  - id: call\n    http: { method: POST, url: \""+srv.URL+"/ping\", body: \"hello\" }\n")
	writeFile(t, filepath.Join(dir, "idle", "routine.yaml"), "name: idle\nsteps:\n  - id: call\n    http: { url: \""+srv.URL+"/ping\" }\n")
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"LLM_KEY": "sk-test"})}
	for _, r := range []string{"ask", "ask", "ping", "idle"} {
		if code, out, errOut := clitest.RunCLIWith(t, deps, "--project", dir, "run-once", filepath.Join(dir, r)); code != 0 {
			t.Fatalf("run-once %s: exit %d\n%s%s", r, code, out, errOut)
		}
	}
	prices := []string{"--currency", "EUR", "--price-tokens", "claude-x=1000/2000", "--price-gb-transferred", "1024", "--price-cpu-second", "1",
		"--budget", "prod=0.1,on_exceed=stop", "--budget", "ai=10"}
	// Dates vary from run to run: shown as such.
	dates := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d|[A-Z][a-z]+ \d{4}`)
	var got bytes.Buffer
	for _, by := range []string{"tag", "routine"} {
		code, out, errOut := clitest.RunCLIWith(t, deps, append([]string{"--project", dir, "costs", "--by", by}, prices...)...)
		if code != 0 {
			t.Fatalf("costs --by %s: exit %d\n%s%s", by, code, out, errOut)
		}
		got.WriteString("$ routines costs --by " + by + "\n" + dates.ReplaceAllString(out, "DATE") + "\n")
	}
	golden := filepath.Join("testdata", "costs.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("routines costs:\n%s\nwant (%s):\n%s", got.String(), golden, want)
	}

	code, out, errOut := clitest.RunCLIWith(t, deps, append([]string{"--project", dir, "costs", "--by", "tag", "-o", "json"}, prices...)...)
	var rep api.CostReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("costs -o json: exit %d\n%s%s", code, out, errOut)
	}
	if rep.Total.Tokens["claude-x-1"].Input != 80 || len(rep.Budgets) != 2 || !rep.Budgets[0].Refusing || rep.Budgets[1].State != cost.StateOK {
		t.Fatalf("json report: %s", out)
	}

	for _, bad := range [][]string{{"--by", "team"}, {"--budget", "prod"}, {"--price-tokens", "x=1"}, {"--price-cpu-second", "-1"}, {"--costs", filepath.Join(dir, "none.yaml")}} {
		if code, _, errOut := clitest.RunCLIWith(t, deps, append([]string{"--project", dir, "costs"}, bad...)...); code != 2 || errOut == "" {
			t.Errorf("costs %v: exit %d %q, want 2 with a message", bad, code, errOut)
		}
	}
}

// TestBudgetStopsRunsThroughServe serves a routine tagged prod whose runs
// cost 0.06 each (tokens) under a budget of 0.14 that stops: the second
// run crosses 80 % (86 %, logged once), the third 100 %, and the next request
// for a run is refused with 429 and a message that names the budget.
func TestBudgetStopsRunsThroughServe(t *testing.T) {
	t.Parallel()
	srv := costServer(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ask", "routine.yaml"), llmRoutine("ask", "prod", srv.URL))
	home := t.TempDir()
	deps := cli.Deps{Getenv: secretEnv(t, map[string]string{"LLM_KEY": "sk-test", "HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "xdg"), "ROUTINES_TOKEN": "", "ROUTINES_PROFILE": ""})}
	const token = "budget-token-1"
	d := clitest.StartServeWith(t, deps, dir, "--token", token, "--price-tokens", "claude-x=1000/2000", "--budget", "prod=0.14,on_exceed=stop", "--budget", "other=1")
	base := "http://" + d.Addr
	do := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	invoke := func() *http.Response { return do(http.MethodPost, "/v1/routines/ask/runs?wait=10s") }
	// waitState waits for the budget of prod to be in state (it is read
	// again every 5 seconds).
	waitState := func(state string) api.CostReport {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp := do(http.MethodGet, "/v1/costs?by=tag&since=1d")
			var rep api.CostReport
			json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
			if len(rep.Budgets) == 2 && rep.Budgets[0].State == state {
				return rep
			}
			if time.Now().After(deadline) {
				t.Fatalf("budget of prod not %s: %+v\n%s", state, rep, d.Out.String())
			}
		}
	}
	for range 2 {
		resp := invoke()
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a run under budget: %d", resp.StatusCode)
		}
	}
	rep := waitState(cost.StateWarning)
	if rep.Rows[0].Name != "prod" || rep.Rows[0].Runs != 2 || rep.Budgets[0].Spent < 0.119 || rep.Budgets[0].Spent > 0.121 {
		t.Fatalf("costs by tag after 2 runs: %+v", rep)
	}
	if resp := invoke(); resp.StatusCode != http.StatusOK { // at 80 %, warn only
		t.Fatalf("a run at 80 %%: %d", resp.StatusCode)
	}
	waitState(cost.StateExceeded)
	resp := invoke()
	defer resp.Body.Close()
	var refusal api.BudgetRefusal
	json.NewDecoder(resp.Body).Decode(&refusal)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !refusal.Budget.Refusing ||
		!strings.Contains(refusal.Error, "budget of tag prod is spent: 0.18 of 0.14 USD") || !strings.Contains(refusal.Error, "--budget prod=AMOUNT") {
		t.Fatalf("a run past the budget: %d %+v", resp.StatusCode, refusal)
	}
	for _, q := range []string{"by=team", "since=soon", "since=-1h"} {
		resp := do(http.MethodGet, "/v1/costs?"+q)
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "want") {
			t.Errorf("GET /v1/costs?%s: %d %q, want 400 saying what to write", q, resp.StatusCode, e.Error)
		}
	}
	// routines costs asks the server of a profile, priced at its rates.
	if code, out, errOut := clitest.RunCLIWith(t, deps, "login", base, "--token", token, "--profile", "local"); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errOut)
	}
	code, costs, errOut := clitest.RunCLIWith(t, deps, "--profile", "local", "costs", "--by", "tag", "--since", "1d")
	if code != 0 || !regexp.MustCompile(`(?m)^prod +3 .* 0\.1800$`).MatchString(costs) || !strings.Contains(costs, "exceeded, refusing new runs") {
		t.Fatalf("routines --profile local costs: exit %d\n%s%s", code, costs, errOut)
	}
	out := d.Out.String()
	if strings.Count(out, "budget 80 % spent") != 1 || strings.Count(out, "budget spent: new runs of its routines are refused") != 1 || !strings.Contains(out, `msg="run refused" routine=ask`) {
		t.Fatalf("the daemon's log:\n%s", out)
	}
}
