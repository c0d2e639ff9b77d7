package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

func TestClassifyTrainAndEval(t *testing.T) {
	t.Parallel()
	csvPath, err := filepath.Abs("../../examples/support-triage/data/support.csv")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "model", "support.json")
	code, out, errOut := clitest.RunCLI(t, "classify", "train", csvPath, "--model", model)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"billing  ", "feature-request", "technical", "165 examples, 3 labels, vocabulary of ", "wrote " + model} {
		if !strings.Contains(out, want) {
			t.Fatalf("train output lacks %q:\n%s", want, out)
		}
	}
	first, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = clitest.RunCLI(t, "classify", "train", csvPath, "--model", model, "-o", "json")
	if code != 0 {
		t.Fatalf("train -o json: exit %d: %s", code, errOut)
	}
	var rep struct {
		Examples   int            `json:"examples"`
		Labels     map[string]int `json:"labels"`
		Vocabulary int            `json:"vocabulary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Examples != 165 || rep.Labels["billing"] != 55 || rep.Vocabulary == 0 {
		t.Fatalf("train -o json: %v: %s", err, out)
	}
	second, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("training twice gave two different model files")
	}

	code, out, errOut = clitest.RunCLI(t, "classify", "eval", csvPath, "-o", "json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errOut)
	}
	var res struct {
		Labels    []string `json:"labels"`
		Test      int      `json:"test"`
		Accuracy  float64  `json:"accuracy"`
		Confusion [][]int  `json:"confusion"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("eval -o json: %v: %s", err, out)
	}
	if res.Test != 33 || res.Accuracy < 0.85 || len(res.Confusion) != 3 {
		t.Fatalf("eval: %+v", res)
	}
	code, out, _ = clitest.RunCLI(t, "classify", "eval", csvPath, "--split", "0.3", "--seed", "4")
	if code != 0 || !strings.HasPrefix(out, "accuracy ") || !strings.Contains(out, "ACTUAL \\ PREDICTED") {
		t.Fatalf("eval: exit %d:\n%s", code, out)
	}
}

func TestClassifyTrainBadCSV(t *testing.T) {
	t.Parallel()
	csvPath := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(csvPath, []byte("label,text\nbilling,refund\nbilling,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := clitest.RunCLI(t, "classify", "train", csvPath)
	if code != 2 || !strings.Contains(errOut, csvPath+`:3: the text of this "billing" example is empty`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(csvPath + ".model.json"); err == nil {
		t.Fatal("a model was written from a bad CSV")
	}
}
