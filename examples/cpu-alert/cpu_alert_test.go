// Package cpualert is the example of events: a routine emits cpu.alert
// with a host, another listens and dedupes by host. Its test starts the
// daemon and invokes the watcher three times.
package cpualert

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

type run struct {
	Routine string `json:"routine"`
	State   string `json:"state"`
	Steps   []struct {
		ID      string         `json:"id"`
		Outputs map[string]any `json:"outputs"`
	} `json:"steps"`
}

func getJSON(t *testing.T, method, url, body string, v any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestAlertPagesOncePerHost(t *testing.T) {
	// A copy, so the checkout gets no .routines/ of its own.
	dir := clitest.CopyProject(t, ".")
	addr, out := clitest.Serve(t, dir)
	base := "http://" + addr

	// web1 twice, then web2: two pages, the second alert of web1 folded
	// into the first. Then a host with a line break, which must not add an
	// output to the page run.
	const forged = "web3\nforged=an output of the emitter's choosing"
	hosts := []string{"web1", "web1", "web2", forged}
	var outputs []map[string]any
	for _, host := range hosts {
		body, err := json.Marshal(map[string]string{"host": host})
		if err != nil {
			t.Fatal(err)
		}
		var w run
		getJSON(t, http.MethodPost, base+"/v1/routines/watch/runs?wait=20s", string(body), &w)
		if w.State != "succeeded" || len(w.Steps) != 2 {
			t.Fatalf("watch %q: %+v\n%s", host, w, out.String())
		}
		outputs = append(outputs, w.Steps[1].Outputs)
	}
	if outputs[0]["deduplicated"] != "false" || outputs[1]["deduplicated"] != "true" || outputs[2]["deduplicated"] != "false" {
		t.Fatalf("deduplicated: %v", outputs)
	}
	// run_ids is the list of the runs the event made, one here.
	runID := func(i int) string {
		ids, _ := outputs[i]["run_ids"].([]any)
		if len(ids) != 1 {
			t.Fatalf("run_ids: %v", outputs)
		}
		return ids[0].(string)
	}
	if runID(0) != runID(1) || runID(0) == runID(2) {
		t.Fatalf("run_ids: %v", outputs)
	}
	for i, host := range map[int]string{0: "web1", 2: "web2", 3: forged} {
		var p run
		for deadline := time.Now().Add(20 * time.Second); p.State != "succeeded" && p.State != "failed" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			getJSON(t, http.MethodGet, base+"/v1/runs/"+runID(i), "", &p)
		}
		if p.Routine != "page" || p.State != "succeeded" || p.Steps[0].Outputs["paged"] != host || len(p.Steps[0].Outputs) != 1 {
			t.Fatalf("page of %q: %+v", host, p)
		}
	}
}
