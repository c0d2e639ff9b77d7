package steps

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/classify"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

const supportCSV = `label,text
billing,I was charged twice for my subscription this month
billing,Please refund the duplicate payment on my invoice
billing,My credit card was billed the wrong amount
billing,Where can I download the receipt for my last invoice
technical,The app crashes when I try to log in
technical,I get error 500 when uploading a file
technical,Login page times out after the update
technical,The sync is broken and shows an error
`

// execClassify runs a classify action in dir.
func execClassify(t *testing.T, dir string, a *routine.ClassifyAction) (routine.Outputs, string, error) {
	t.Helper()
	var stdout strings.Builder
	res, err := ClassifyKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "kind", Attempt: 1,
		Action: &routine.Action{Classify: a}, Dir: dir, Stdout: &stdout,
	})
	if err != nil {
		return nil, stdout.String(), err
	}
	wantShape(t, "classify", res.Outputs)
	return res.Outputs, stdout.String(), nil
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestClassifyModelFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	examples, err := classify.ReadCSV("support.csv", []byte(supportCSV))
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.Train(examples)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(filepath.Join(dir, "model", "support.json")); err != nil {
		t.Fatal(err)
	}
	text := "Refund please\nI was charged twice on my card"
	out, log, err := execClassify(t, dir, &routine.ClassifyAction{Text: text, Model: "model/support.json"})
	if err != nil {
		t.Fatal(err)
	}
	if out["label"] != "billing" || out["best_label"] != "billing" {
		t.Fatalf("outputs %v", out)
	}
	scores, ok := out["scores"].(map[string]any)
	if !ok || len(scores) != 2 || score(scores["billing"]) <= score(scores["technical"]) {
		t.Fatalf("scores %#v", out["scores"])
	}
	if confidence := out["confidence"].(string); confidence == "" || confidence[:2] != "0." && confidence != "1.00" {
		t.Fatalf("confidence %q", out["confidence"])
	}
	if !strings.HasPrefix(log, "billing (confidence ") || strings.Contains(log, "charged") {
		t.Fatalf("log %q", log)
	}

	// Below min_confidence: uncertain, and the best guess stays.
	out, _, err = execClassify(t, dir, &routine.ClassifyAction{Text: "hello", Model: "model/support.json", MinConfidence: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if out["label"] != routine.ClassifyUncertain || out["best_label"] == "" || out["best_label"] == routine.ClassifyUncertain {
		t.Fatalf("outputs %v, want uncertain", out)
	}
}

func TestClassifyTrainingCSV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "data", "support.csv")
	writeTestFile(t, csvPath, supportCSV)
	a := &routine.ClassifyAction{Text: "the app shows an error when I log in", Training: "data/support.csv"}
	out, log, err := execClassify(t, dir, a)
	if err != nil {
		t.Fatal(err)
	}
	if out["label"] != "technical" || !strings.Contains(log, "trained from it now") {
		t.Fatalf("outputs %v, log %q", out, log)
	}
	cache := filepath.Join(dir, "data", "support.csv.model.json")
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no cached model: %v", err)
	}
	// Second run: the cache.
	if _, log, err = execClassify(t, dir, a); err != nil || strings.Contains(log, "trained") {
		t.Fatalf("second run: log %q, err %v", log, err)
	}
	// A changed CSV with a new label retrains.
	writeTestFile(t, csvPath, supportCSV+"feature-request,Please add a dark mode\nfeature-request,Would love an export to CSV feature\n")
	out, log, err = execClassify(t, dir, &routine.ClassifyAction{Text: "please add dark mode", Training: "data/support.csv"})
	if err != nil || out["label"] != "feature-request" || !strings.Contains(log, "trained from it now") {
		t.Fatalf("after the change: outputs %v, log %q, err %v", out, log, err)
	}
}

func TestClassifyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "one.csv"), "label,text\nbilling,refund\nbilling,invoice\n")
	writeTestFile(t, filepath.Join(dir, "bad.json"), "{")
	outside := t.TempDir()
	writeTestFile(t, filepath.Join(outside, "m.json"), "{}")
	if err := os.Symlink(filepath.Join(outside, "m.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		a    *routine.ClassifyAction
		want string
	}{
		{&routine.ClassifyAction{Text: "x", Training: "one.csv"}, `every example has the label "billing"`},
		{&routine.ClassifyAction{Text: "x", Training: "missing.csv"}, "no such file"},
		{&routine.ClassifyAction{Text: "x", Model: "bad.json"}, "not a model file"},
		{&routine.ClassifyAction{Text: "x", Model: "../m.json"}, "must stay inside the routine directory"},
		{&routine.ClassifyAction{Text: "x", Model: "link.json"}, "through a symlink"},
	} {
		_, _, err := execClassify(t, dir, tt.a)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%+v: error %v, want %q", tt.a, err, tt.want)
		}
		if _, retryable, _ := stepkind.Describe(err); retryable {
			t.Fatalf("%+v: error %v is retryable", tt.a, err)
		}
	}
}

// TestEscapeClassifyReadsProjectState: a routine at the project root
// cannot train on, or load a model from, the project's .routines (its
// vault key, its store), whose parse errors would quote it.
func TestEscapeClassifyReadsProjectState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, ".routines", "master.key"), "AGE-SECRET-KEY-1TOPSECRET\n")
	for _, a := range []*routine.ClassifyAction{
		{Text: "x", Training: ".routines/master.key"},
		{Text: "x", Model: ".routines/master.key"},
	} {
		var stdout strings.Builder
		_, err := ClassifyKind{}.Execute(t.Context(), &stepkind.Execution{
			RunID: "01RUN", StepID: "kind", Attempt: 1, Action: &routine.Action{Classify: a},
			Dir: dir, StateDir: filepath.Join(dir, ".routines"), Stdout: &stdout,
		})
		if err == nil || !strings.Contains(err.Error(), "state directory") || strings.Contains(err.Error()+stdout.String(), "TOPSECRET") {
			t.Fatalf("classify of .routines/master.key: %v %q (layer: classify path check)", err, stdout.String())
		}
	}
}

// score is a number of the scores output: a float64, or an int when it is
// a whole number.
func score(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	return math.NaN()
}
