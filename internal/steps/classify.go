package steps

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/routines-dev/routines/internal/classify"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// ClassifyKind labels a text with the classifier of internal/classify,
// in the engine's process: no network, no child process.
type ClassifyKind struct{}

// Name implements Kind.
func (ClassifyKind) Name() string { return "classify" }

// Execute implements Kind. It outputs label (uncertain when the best
// guess is below min_confidence), best_label, confidence (the posterior
// probability of best_label, two decimals) and scores (a JSON object of
// each label's probability). It logs the label, never the text.
func (ClassifyKind) Execute(_ context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Classify
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("classify: the step has no classify action"))
	}
	var (
		m       *classify.Model
		source  string
		trained bool
		err     error
	)
	switch {
	case a.Model != "":
		source = a.Model
		path, perr := classifyPath(x.Dir, x.StateDir, a.Model)
		if perr != nil {
			return nil, stepkind.Fail("", false, perr)
		}
		m, err = classify.Load(path)
	case a.Training != "":
		source = a.Training
		path, perr := classifyPath(x.Dir, x.StateDir, a.Training)
		if perr != nil {
			return nil, stepkind.Fail("", false, perr)
		}
		m, trained, err = classify.LoadOrTrain(path)
	default:
		return nil, stepkind.Fail("", false, errors.New("classify: give model or training"))
	}
	if err != nil {
		// The same file gives the same error: another try cannot help.
		return nil, stepkind.Fail("", false, fmt.Errorf("classify: %w", err))
	}
	p := m.Predict(a.Text)
	label := p.Label
	if a.MinConfidence > 0 && p.Confidence < a.MinConfidence {
		label = routine.ClassifyUncertain
	}
	rounded := make(map[string]float64, len(p.Scores))
	for l, s := range p.Scores {
		rounded[l], _ = strconv.ParseFloat(strconv.FormatFloat(s, 'f', 4, 64), 64)
	}
	scores, err := structured(rounded)
	if err != nil {
		return nil, fmt.Errorf("classify: encode scores: %w", err)
	}
	confidence := strconv.FormatFloat(p.Confidence, 'f', 2, 64)
	how := ""
	if trained {
		how = ", trained from it now"
	}
	fmt.Fprintf(x.Stdout, "%s (confidence %s, best %s) by %s%s\n", label, confidence, p.Label, source, how)
	return &stepkind.Result{Outputs: routine.Outputs{
		"label":      label,
		"best_label": p.Label,
		"confidence": confidence,
		"scores":     scores,
	}}, nil
}

// classifyPath returns the absolute path of a model or CSV of the routine,
// with its symlinks resolved, or an error when it leads outside the
// routine directory or into the project's state directory (its store and
// vault key, when the routine lives at the project root).
func classifyPath(dir, stateDir, rel string) (string, error) {
	abs := filepath.Join(dir, rel)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("classify: %s must stay inside the routine directory", rel)
	}
	resolved, err := resolveExisting(abs)
	if err != nil {
		return "", fmt.Errorf("classify: %s: %w", rel, err)
	}
	root, err := resolveExisting(dir)
	if err != nil {
		return "", fmt.Errorf("classify: the routine directory: %w", err)
	}
	if !within(root, resolved) {
		return "", fmt.Errorf("classify: %s leads to %s through a symlink, outside the routine directory", rel, resolved)
	}
	if stateDir != "" {
		if state, err := resolveExisting(stateDir); err == nil && within(state, resolved) {
			return "", fmt.Errorf("classify: %s is in the project's state directory %s, which no step may read", rel, stateDir)
		}
	}
	return resolved, nil
}

var _ stepkind.Kind = ClassifyKind{}
