package classify

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntheticCSV builds n examples of each of three labels: sentences made
// of words typical of the label mixed with words every label uses, so a
// classifier must weigh the evidence rather than match one keyword.
func syntheticCSV(n int, seed uint64) []byte {
	vocab := map[string][]string{
		"billing":   {"invoice", "charged", "refund", "payment", "card", "twice", "subscription", "receipt", "price", "billing"},
		"technical": {"error", "crash", "login", "timeout", "api", "500", "broken", "install", "bug", "server"},
		"feature":   {"please", "add", "would", "love", "support", "export", "dark", "mode", "integration", "wish"},
	}
	common := []string{"hello", "the", "my", "account", "team", "thanks", "today", "app", "we", "is", "and", "it"}
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	b.WriteString("label,text\n")
	for i := range n {
		for _, label := range []string{"billing", "feature", "technical"} {
			var words []string
			for range 10 {
				if rng.IntN(10) < 4 {
					words = append(words, vocab[label][rng.IntN(len(vocab[label]))])
				} else {
					words = append(words, common[rng.IntN(len(common))])
				}
			}
			fmt.Fprintf(&b, "%s,\"Ticket %d: %s.\"\n", label, i, strings.Join(words, " "))
		}
	}
	return b.Bytes()
}

func TestFeatures(t *testing.T) {
	t.Parallel()
	got := Features("Refund, PLEASE! Order #123-b  déjà")
	want := []string{"refund", "please", "order", "123", "b", "déjà",
		"refund please", "please order", "order 123", "123 b", "b déjà"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Features = %q, want %q", got, want)
	}
}

func TestHeldOutAccuracy(t *testing.T) {
	t.Parallel()
	examples, err := ReadCSV("synthetic.csv", syntheticCSV(60, 1))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Eval(examples, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Test != 45 || res.Train != 135 {
		t.Fatalf("split %d/%d, want 45 held out of 180 (stratified: 15 of each label)", res.Test, res.Train)
	}
	for i, row := range res.Confusion {
		sum := 0
		for _, n := range row {
			sum += n
		}
		if sum != 15 {
			t.Fatalf("label %s has %d held-out examples, want 15: %v", res.Labels[i], sum, res.Confusion)
		}
	}
	if res.Accuracy < 0.9 {
		t.Fatalf("held-out accuracy %.3f < 0.9; confusion %v", res.Accuracy, res.Confusion)
	}
	again, err := Eval(examples, 0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(res) {
		t.Fatalf("the same seed gave %v, then %v", res, again)
	}
}

func TestPredict(t *testing.T) {
	t.Parallel()
	m, err := Train([]Example{
		{Label: "billing", Text: "I was charged twice on my invoice"},
		{Label: "billing", Text: "refund the payment please"},
		{Label: "technical", Text: "the app crashes on login"},
		{Label: "technical", Text: "error 500 when I log in"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Predict("Why was my card charged twice? I want a refund")
	if p.Label != "billing" || p.Confidence <= 0.5 || p.Confidence != p.Scores["billing"] {
		t.Fatalf("prediction %+v, want billing above 0.5", p)
	}
	if sum := p.Scores["billing"] + p.Scores["technical"]; math.Abs(sum-1) > 1e-9 {
		t.Fatalf("scores %v add up to %v", p.Scores, sum)
	}
	// Nothing known: the priors, equal here, and the first label.
	p = m.Predict("zzz")
	if p.Label != "billing" || p.Confidence != 0.5 {
		t.Fatalf("prediction of unknown words %+v, want the prior 0.5", p)
	}
}

func TestModelIsDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(csvPath, syntheticCSV(20, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for i := range 2 {
		m, err := TrainCSV(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("m%d.json", i))
		if err := m.Save(path); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("the same CSV gave two different model files")
	}
	m, err := Load(filepath.Join(dir, "m0.json"))
	if err != nil {
		t.Fatal(err)
	}
	trained, err := TrainCSV(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	text := "my invoice shows a payment charged twice"
	if a, b := m.Predict(text), trained.Predict(text); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("the loaded model predicts %+v, the trained one %+v", a, b)
	}
}

func TestReadCSVErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, data, want string }{
		{"empty", "", "d.csv: the file is empty"},
		{"no header", "billing,charged twice\ntechnical,crash\n", `d.csv:1: the first line must be the header label,text (got "billing,charged twice")`},
		{"empty text", "label,text\nbilling,charged twice\ntechnical,  \n", `d.csv:3: the text of this "technical" example is empty`},
		{"no words", "label,text\nbilling,\"?!\"\n", `d.csv:2: the text of this "billing" example has no word or number`},
		{"empty label", "label,text\nbilling,a\n,b\n", "d.csv:3: the label is empty"},
		{"short record", "label,text\nbilling,a\ntechnical\n", "d.csv:3: want the columns label,text, got 1 field(s)"},
		{"bad quote", "label,text\nbilling,a\ntechnical,\"crash\n", "d.csv:3:"},
		{"header only", "label,text\n", "d.csv: no examples after the header"},
	} {
		_, err := ReadCSV("d.csv", []byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	// A multi-line quoted text: the line of the record is where it starts.
	ex, err := ReadCSV("d.csv", []byte("text,label\n\"Subject: help\nbody\",technical\n\"x\",billing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].Label != "technical" || ex[0].Text != "Subject: help\nbody" || ex[1].Line != 4 {
		t.Fatalf("examples %+v", ex)
	}
	_, err = Train([]Example{{Label: "billing", Text: "a"}, {Label: "billing", Text: "b"}})
	if err == nil || !strings.Contains(err.Error(), `every example has the label "billing"`) {
		t.Fatalf("one label: %v", err)
	}
}

func TestLoadOrTrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(csvPath, []byte("label,text\nbilling,refund my invoice\ntechnical,login error\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, trained, err := LoadOrTrain(csvPath)
	if err != nil || !trained {
		t.Fatalf("first use: trained %v, err %v", trained, err)
	}
	if _, err := os.Stat(CachePath(csvPath)); err != nil {
		t.Fatal(err)
	}
	if _, trained, err := LoadOrTrain(csvPath); err != nil || trained {
		t.Fatalf("second use: trained %v, err %v; want the cache", trained, err)
	}
	if got := m.LabelNames(); fmt.Sprint(got) != "[billing technical]" {
		t.Fatalf("labels %v", got)
	}
	// A changed CSV retrains, and the new label shows.
	if err := os.WriteFile(csvPath, []byte("label,text\nbilling,refund my invoice\ntechnical,login error\nfeature,add dark mode\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, trained, err = LoadOrTrain(csvPath)
	if err != nil || !trained || len(m.Labels) != 3 {
		t.Fatalf("after a change: trained %v, labels %v, err %v", trained, m.LabelNames(), err)
	}
	// A damaged cache is replaced.
	if err := os.WriteFile(CachePath(csvPath), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, trained, err := LoadOrTrain(csvPath); err != nil || !trained {
		t.Fatalf("damaged cache: trained %v, err %v", trained, err)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ data, want string }{
		{`[]`, "not a model file"},
		{`{"version":2,"kind":"multinomial_naive_bayes"}`, "model format version 2"},
		{`{"version":1,"kind":"multinomial_naive_bayes","labels":[{"label":"a","examples":1}]}`, "1 label(s)"},
		{`{"version":1,"kind":"multinomial_naive_bayes","labels":[{"label":"a","examples":1},{"label":"b","examples":1}],"features":{"x":[1]}}`, `feature "x" has 1 counts for 2 labels`},
	} {
		if _, err := Parse([]byte(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.data, err, tt.want)
		}
	}
}
