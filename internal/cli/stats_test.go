package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/routine"
)

// valueProject writes routines with values and tags: save succeeds
// unless its input fail is 1, nightly always fails for good (dead), plain
// always succeeds.
func valueProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "save", "routine.yaml"), `name: save
tags: [ops, prod]
value: { minutes_saved_per_run: 5 }
inputs:
  fail: { default: "0" }
steps:
  - id: work
    run: test "{{ input.fail }}" = 0
`)
	writeFile(t, filepath.Join(dir, "nightly", "routine.yaml"), `name: nightly
tags: [ops]
dead_letter: true
steps:
  - id: export
    run: echo broken >&2; exit 3
`)
	writeFile(t, filepath.Join(dir, "plain", "routine.yaml"), `name: plain
value: { minutes_saved_per_run: 2 }
steps:
  - id: hi
    run: echo hi
`)
	return dir
}

// Stats and the value report of real runs, from the project's store and
// from the daemon's API through a profile, agree and count exactly.
func TestStatsAndReportOfRealRuns(t *testing.T) {
	t.Parallel()
	dir := valueProject(t)
	d := clitest.StartServeWith(t, cli.Deps{Getenv: remoteEnv(t)}, dir, "--token", remoteToken)
	c := newRemoteCLI(t)
	c.must(0, "logged in", "login", "http://"+d.Addr, "--token", remoteToken)
	p := []string{"--profile", "default"}
	invoke := func(code int, name string, args ...string) {
		t.Helper()
		if r := c.run("", append(append(p, "invoke", name, "--wait"), args...)...); r.code != code {
			t.Fatalf("invoke %s %v: exit %d, want %d\n%s%s", name, args, r.code, code, r.stdout, r.stderr)
		}
	}
	// save: ok, fail, fail, ok, fail: two incidents, one recovered.
	for _, fail := range []string{"0", "1", "1", "0", "1"} {
		invoke(map[string]int{"0": 0, "1": 1}[fail], "save", "-i", "fail="+fail)
	}
	invoke(1, "nightly")
	invoke(1, "nightly")
	invoke(0, "plain")

	local := func(args ...string) result {
		t.Helper()
		r := routinesWith(t, cli.Deps{Getenv: c.getenv}, dir, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}

	// Stats: the same from the store and from the API.
	for _, args := range [][]string{{"stats", "-o", "json"}, append(p, "stats", "-o", "json")} {
		var s api.Stats
		r := c.run("", args...)
		if args[0] == "stats" {
			r = local(args...)
		}
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, r.stdout, r.stderr)
		}
		got := map[string]api.Summary{}
		for _, rs := range s.Routines {
			got[rs.Routine] = rs.Summary
		}
		if sv := got["save"]; sv.Invocations != 5 || sv.SuccessRate != 0.4 || sv.ErrorRate != 0.6 || sv.LatencyAvgSeconds <= 0 || sv.LatencyP95Seconds <= 0 {
			t.Errorf("%v: save %+v", args, sv)
		}
		if n := got["nightly"]; n.Invocations != 2 || n.ByState[routine.StateDead] != 2 || n.ErrorRate != 1 {
			t.Errorf("%v: nightly %+v", args, n)
		}
		if o := s.Overall; o.Invocations != 8 || o.ByState[routine.StateSucceeded] != 3 || o.CPUSeconds <= 0 {
			t.Errorf("%v: overall %+v", args, o.Summary)
		}
	}
	r := local("stats", "--routine", "save")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "ROUTINE  RUNS  OK") ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1])[:4], " "), "save 5 40.0% 60.0%") {
		t.Errorf("stats --routine save:\n%s", r.stdout)
	}

	// The report: the times of the runs give the exact recovery.
	var runs []*routine.Run
	if err := json.Unmarshal([]byte(local("runs", "--routine", "save", "-o", "json").stdout), &runs); err != nil || len(runs) != 5 {
		t.Fatalf("runs: %v %d", err, len(runs))
	}
	// Newest first: runs[3] is the first failure, runs[1] the recovery.
	mttr := runs[1].FinishedAt.Sub(*runs[3].FinishedAt).Seconds()
	var reps [2]api.Report
	for i, args := range [][]string{{"report", "-o", "json"}, append(p, "report", "-o", "json", "--since", "30d")} {
		r := c.run("", args...)
		if i == 0 {
			r = local(args...)
		}
		if err := json.Unmarshal([]byte(r.stdout), &reps[i]); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, r.stdout, r.stderr)
		}
	}
	if span := reps[1].Until.Sub(reps[1].Since); span != 30*24*time.Hour || reps[1].TrendStepSeconds != 7*24*3600 {
		t.Errorf("report --since 30d covers %v in steps of %vs", span, reps[1].TrendStepSeconds)
	}
	for _, rep := range reps {
		rows := map[string]api.ReportRow{"": rep.Total}
		for _, r := range append(rep.Routines, rep.Tags...) {
			rows[r.Name] = r
		}
		save, nightly, ops := rows["save"], rows["nightly"], rows["ops"]
		if save.Runs != 5 || save.Succeeded != 2 || save.Failed != 3 || save.ErrorRate != 0.6 || save.HoursSaved != 10.0/60 ||
			save.Incidents != 2 || save.Recovered != 1 || save.OpenIncidents != 1 || save.MTTRSeconds == nil || *save.MTTRSeconds != mttr {
			t.Errorf("save %+v (mttr %v, want %v)", save, save.MTTRSeconds, mttr)
		}
		if nightly.Dead != 2 || nightly.Incidents != 1 || nightly.OpenIncidents != 1 || nightly.MTTRSeconds != nil || nightly.HoursSaved != 0 {
			t.Errorf("nightly %+v", nightly)
		}
		if plain := rows["plain"]; plain.HoursSaved != 2.0/60 || plain.Tags != nil {
			t.Errorf("plain %+v", plain)
		}
		if ops.Runs != 7 || ops.Dead != 2 || ops.ErrorRate != 5.0/7 || ops.Incidents != 3 || ops.OpenIncidents != 2 ||
			strings.Join(ops.Routines, ",") != "nightly,save" || rows["prod"].Runs != 5 {
			t.Errorf("ops %+v, prod %+v", ops, rows["prod"])
		}
		if tot := rows[""]; tot.Runs != 8 || tot.Succeeded != 3 || tot.HoursSaved != 12.0/60 || tot.Dead != 2 {
			t.Errorf("total %+v", tot)
		}
	}

	// The HTML report: one file, with the figures, and nothing from outside.
	out := filepath.Join(t.TempDir(), "report.html")
	if r := local("report", "-o", "html", "--out", out); !strings.Contains(r.stderr, "report written to "+out) || r.stdout != "" {
		t.Fatalf("report --out: %+v", r)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, string(page), "<td>save</td>", "0.2 h", "60.0%", "dead-lettered runs", "ops", "Error rate per week")

	c.must(2, "--since 0s: want a duration more than 0", append(p, "report", "--since", "0s")...)
	for path, want := range map[string]string{
		"/v1/stats?step=10s":                    "step=10s: want a duration of at least 1m",
		"/v1/stats?since=soon":                  "since=soon: want a duration before now",
		"/v1/stats?since=1h&until=2h":           "is not before until=2h",
		"/v1/report?routine=save":               "routine= does not apply to the report",
		"/v1/report?until=2026-02-30T00:00:00Z": "until=2026-02-30T00:00:00Z: want",
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.Addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+remoteToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || !strings.Contains(body.Error, want) {
			t.Errorf("GET %s: %d %q (%v), want 400 with %q", path, resp.StatusCode, body.Error, err, want)
		}
	}
	c.must(2, "-o html", "stats", "-o", "html")
	c.never(remoteToken)
}

// checkSelfContained fails unless page holds each of want and refers to
// nothing outside itself.
func checkSelfContained(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("the HTML report lacks %q", w)
		}
	}
	for _, bad := range []string{"http:", "https:", "<script", "<link", "@import", "url(", "src="} {
		if strings.Contains(page, bad) {
			t.Errorf("the HTML report holds %q: it must be self-contained", bad)
		}
	}
}
