package routine

// ClassifyAction labels a text with a small classifier that runs inside
// the engine: a model file written by `routines classify train`, or a CSV
// of labelled examples trained on first use. Exactly one of Model and
// Training is set.
type ClassifyAction struct {
	Text          string  `yaml:"text" json:"text" jsonschema:"required,description=The text to classify (a template)."`
	Model         string  `yaml:"model,omitempty" json:"model,omitempty" template:"-" jsonschema:"description=A model file in the routine directory\\, written by routines classify train. One of model and training."`
	Training      string  `yaml:"training,omitempty" json:"training,omitempty" template:"-" jsonschema:"description=A CSV (header label\\,text) in the routine directory; trained on first use and cached next to it as <csv>.model.json\\, trained again when the CSV changes. One of model and training."`
	MinConfidence float64 `yaml:"min_confidence,omitempty" json:"min_confidence,omitempty" jsonschema:"exclusiveMinimum=0,exclusiveMaximum=1,description=Below this probability the label output is uncertain (best_label keeps the best guess)."`
}

// ClassifyUncertain is the label of a classify step whose best guess is
// less probable than its min_confidence.
const ClassifyUncertain = "uncertain"
