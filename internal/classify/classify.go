// Package classify owns the small text classifier of the classify step and
// of `routines classify`: a multinomial naive Bayes model over word
// unigrams and bigrams, trained from a CSV of labelled examples, saved as a
// deterministic JSON file, and evaluated on a stratified held-out split. It
// needs no network and no dependency: a routine carries its model as a file.
package classify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// FormatVersion is the version of the model file this package writes and
// reads.
const FormatVersion = 1

// Example is one labelled text, with the line of the CSV it came from.
type Example struct {
	Label string
	Text  string
	Line  int
}

// Model is a trained classifier. It keeps counts, not probabilities, so
// the same examples always give the same bytes on disk.
type Model struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"`
	// Source is the SHA-256 (hex) of the CSV the model was trained from,
	// so a cached model can tell it is stale.
	Source string        `json:"source_sha256,omitempty"`
	Labels []LabelCounts `json:"labels"`
	// Features maps each unigram and bigram ("late payment") to its count
	// in the examples of each label, in the order of Labels.
	Features map[string][]int `json:"features"`
}

// LabelCounts are the examples of one label and the features they hold.
type LabelCounts struct {
	Label    string `json:"label"`
	Examples int    `json:"examples"`
	Features int    `json:"features"`
}

// modelKind names the algorithm in the model file.
const modelKind = "multinomial_naive_bayes"

// Train builds a model from examples. It needs at least two labels.
func Train(examples []Example) (*Model, error) {
	if len(examples) == 0 {
		return nil, errors.New("no examples to train on")
	}
	var labels []string
	for _, e := range examples {
		if !slices.Contains(labels, e.Label) {
			labels = append(labels, e.Label)
		}
	}
	if len(labels) < 2 {
		return nil, fmt.Errorf("every example has the label %q: a classifier needs examples of at least two labels", labels[0])
	}
	slices.Sort(labels)
	m := &Model{Version: FormatVersion, Kind: modelKind, Features: map[string][]int{}}
	index := make(map[string]int, len(labels))
	for i, l := range labels {
		index[l] = i
		m.Labels = append(m.Labels, LabelCounts{Label: l})
	}
	for _, e := range examples {
		i := index[e.Label]
		m.Labels[i].Examples++
		for _, f := range Features(e.Text) {
			counts := m.Features[f]
			if counts == nil {
				counts = make([]int, len(labels))
				m.Features[f] = counts
			}
			counts[i]++
			m.Labels[i].Features++
		}
	}
	return m, nil
}

// Prediction is what a model says of one text.
type Prediction struct {
	// Label is the most probable label; Confidence its posterior
	// probability.
	Label      string
	Confidence float64
	// Scores holds the posterior probability of every label.
	Scores map[string]float64
}

// Predict returns the posterior probability of each label for text:
// Laplace-smoothed log-likelihoods of its features plus the log prior,
// through a softmax. Features the model never saw are left out. Of labels
// with the same probability, the first in alphabetical order wins.
func (m *Model) Predict(text string) Prediction {
	total := 0
	for _, l := range m.Labels {
		total += l.Examples
	}
	vocab := float64(len(m.Features))
	logp := make([]float64, len(m.Labels))
	for i, l := range m.Labels {
		logp[i] = math.Log(float64(l.Examples) / float64(total))
	}
	for _, f := range Features(text) {
		counts, ok := m.Features[f]
		if !ok {
			continue
		}
		for i, l := range m.Labels {
			logp[i] += math.Log((float64(counts[i]) + 1) / (float64(l.Features) + vocab))
		}
	}
	top := math.Inf(-1)
	for _, lp := range logp {
		top = max(top, lp)
	}
	sum := 0.0
	for i := range logp {
		logp[i] = math.Exp(logp[i] - top)
		sum += logp[i]
	}
	p := Prediction{Scores: make(map[string]float64, len(m.Labels))}
	for i, l := range m.Labels {
		prob := logp[i] / sum
		p.Scores[l.Label] = prob
		if p.Label == "" || prob > p.Confidence {
			p.Label, p.Confidence = l.Label, prob
		}
	}
	return p
}

// Features returns the unigrams and bigrams of text, in order, with
// repeats: the text lower-cased, every run of characters that are not
// letters or digits taken as one space.
func Features(text string) []string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := make([]string, 0, 2*len(words))
	out = append(out, words...)
	for i := 1; i < len(words); i++ {
		out = append(out, words[i-1]+" "+words[i])
	}
	return out
}

// LabelNames returns the labels the model knows, in alphabetical order.
func (m *Model) LabelNames() []string {
	out := make([]string, len(m.Labels))
	for i, l := range m.Labels {
		out[i] = l.Label
	}
	return out
}

// Marshal returns the model file: indented JSON whose keys are sorted, so
// a model trained from the same examples is byte for byte the same.
func (m *Model) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	head, err := json.Marshal(struct {
		Version int    `json:"version"`
		Kind    string `json:"kind"`
		Source  string `json:"source_sha256,omitempty"`
	}{m.Version, m.Kind, m.Source})
	if err != nil {
		return nil, err
	}
	// One line for the header fields, one per label and per feature:
	// small diffs when the training set changes, and a file still fast
	// to read.
	buf.WriteString("  " + strings.TrimSuffix(strings.TrimPrefix(string(head), "{"), "}") + ",\n")
	buf.WriteString("  \"labels\": [\n")
	for i, l := range m.Labels {
		b, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		buf.WriteString("    ")
		buf.Write(b)
		if i < len(m.Labels)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("  ],\n  \"features\": {\n")
	keys := make([]string, 0, len(m.Features))
	for k := range m.Features {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(m.Features[k])
		if err != nil {
			return nil, err
		}
		buf.WriteString("    ")
		buf.Write(kb)
		buf.WriteString(": ")
		buf.Write(vb)
		if i < len(keys)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("  }\n}\n")
	return buf.Bytes(), nil
}

// Parse reads a model file and checks that it is whole.
func Parse(data []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a model file: %w", err)
	}
	switch {
	case m.Version != FormatVersion:
		return nil, fmt.Errorf("model format version %d, this version of routines reads %d: train it again with routines classify train", m.Version, FormatVersion)
	case m.Kind != modelKind:
		return nil, fmt.Errorf("model kind %q, want %q", m.Kind, modelKind)
	case len(m.Labels) < 2:
		return nil, fmt.Errorf("the model has %d label(s), a classifier needs at least two", len(m.Labels))
	}
	for _, l := range m.Labels {
		if l.Examples < 1 {
			return nil, fmt.Errorf("label %q has no examples", l.Label)
		}
	}
	for f, counts := range m.Features {
		if len(counts) != len(m.Labels) {
			return nil, fmt.Errorf("feature %q has %d counts for %d labels", f, len(counts), len(m.Labels))
		}
	}
	return &m, nil
}

// Load reads the model file at path.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

// Save writes the model to path through a temporary file renamed into
// place, so a reader never sees half a model.
func (m *Model) Save(path string) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("encode model: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save model: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("save model: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}
