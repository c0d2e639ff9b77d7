// Package llmbudget is the example of costs: an llm routine tagged prod,
// priced and budgeted by the project's costs.yaml. Its test plays the
// Messages API and reads the costs back with routines costs.
package llmbudget

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestSummarizeCostsAgainstBudget(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"A short summary."}],"stop_reason":"end_turn","usage":{"input_tokens":1200,"output_tokens":45}}`)
	}))
	defer srv.Close()
	dir := clitest.CopyProject(t, ".", "budget_test.go", "README.md")
	home := t.TempDir()
	env := map[string]string{
		"ANTHROPIC_API_KEY": "sk-ant-example", "ROUTINES_COSTS": filepath.Join(dir, "costs.yaml"),
		"HOME": home, "XDG_CONFIG_HOME": home, "ROUTINES_PROFILE": "", "ROUTINES_MASTER_KEY_FILE": filepath.Join(home, "master.key"),
	}
	deps := cli.Deps{Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	for range 2 {
		if code, out, errOut := clitest.RunCLIWith(t, deps, "--project", dir, "run-once", dir, "--input", "text=a long text", "--input", "api="+srv.URL); code != 0 {
			t.Fatalf("run-once: exit %d\n%s%s", code, out, errOut)
		}
	}
	code, out, errOut := clitest.RunCLIWith(t, deps, "--project", dir, "costs", "--by", "tag", "-o", "json")
	if code != 0 {
		t.Fatalf("costs: exit %d\n%s%s", code, out, errOut)
	}
	var rep api.CostReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// 2 × (1200 × 3 + 45 × 15) / 1e6 for the tokens, and a few hundred
	// bytes at 0.09 per GiB.
	if len(rep.Rows) != 1 || rep.Rows[0].Name != "prod" || rep.Rows[0].Runs != 2 || rep.Rows[0].Tokens["claude-sonnet-4-5-20250929"].Input != 2400 {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if c := rep.Total.Cost; c.Tokens < 0.00854 || c.Tokens > 0.00856 || c.Total < c.Tokens || rep.Currency != "USD" {
		t.Fatalf("cost %+v %s", c, rep.Currency)
	}
	if len(rep.Budgets) != 1 || rep.Budgets[0].Tag != "prod" || rep.Budgets[0].Amount != 25 || rep.Budgets[0].OnExceed != "stop" || rep.Budgets[0].State != "ok" {
		t.Fatalf("budgets %+v", rep.Budgets)
	}
}
