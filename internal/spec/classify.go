package spec

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// classify checks a classify: action: a text, exactly one of model and
// training, each a path that stays inside the routine directory (and, when
// the directory is known, names a file there), and a min_confidence
// between 0 and 1. The symlinks of the paths are the step's to resolve.
func (v *validator) classify(p string, a *routine.ClassifyAction) {
	if strings.TrimSpace(a.Text) == "" {
		v.errorf(p+".text", "%s needs text: the text to classify, such as \"{{ event.subject }}\"", human(p))
	}
	model, training := v.given(p+".model"), v.given(p+".training")
	switch {
	case model && training:
		v.errorf(p, "%s has model and training: give one, the trained model file or the CSV to train from", human(p))
	case !model && !training:
		v.errorf(p, "%s needs model (a file written by routines classify train) or training (a CSV of label,text examples)", human(p))
	case model:
		v.classifyPath(p+".model", a.Model, "model file")
	default:
		v.classifyPath(p+".training", a.Training, "training CSV")
	}
	if v.given(p+".min_confidence") && (a.MinConfidence <= 0 || a.MinConfidence >= 1) {
		v.errorf(p+".min_confidence", "%s.min_confidence must be between 0 and 1 (exclusive), got %g", human(p), a.MinConfidence)
	}
}

// classifyPath checks the path of a model file or training CSV.
func (v *validator) classifyPath(p, path, what string) {
	switch {
	case strings.TrimSpace(path) == "":
		v.errorf(p, "%s is empty: write the path of the %s, relative to the routine directory", human(p), what)
		return
	case strings.Contains(path, "{{"):
		v.errorf(p, "%s is not templated: write the path of the %s", human(p), what)
		return
	case !filepath.IsLocal(path):
		v.errorf(p, "%s %q must be a relative path that stays inside the routine directory", human(p), path)
		return
	}
	if v.dir == "" {
		return
	}
	full := filepath.Join(v.dir, path)
	switch fi, err := os.Stat(full); {
	case err != nil:
		v.errorf(p, "%s: %s %s not found (looked in %s)", human(p), what, path, full)
	case fi.IsDir():
		v.errorf(p, "%s: %s %s is a directory (%s)", human(p), what, path, full)
	}
}
