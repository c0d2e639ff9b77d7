package cli

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/routines-dev/routines/internal/classify"
)

func newClassifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "classify",
		Short: "Train and evaluate the text classifier of classify steps, from a CSV of label,text examples",
		Long: "The classify step labels a text with a small naive Bayes model (word unigrams and bigrams).\n" +
			"train writes the model file a step names with model:; eval measures accuracy on held-out examples.\n" +
			"Docs: " + docsURL + "/connectors/classify.md",
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return invalid(fmt.Errorf("classify needs a command: routines classify train CSV, or eval CSV"))
		},
	}
	var model string
	train := &cobra.Command{
		Use:   "train CSV",
		Short: "Train a model from a CSV (header label,text) and write it as JSON",
		Long: "train reads labelled examples (a header line label,text, then one example per record) and writes\n" +
			"the model, by default next to the CSV as CSV.model.json (the file a step with training: CSV caches).\n" +
			"The same CSV always gives the same bytes.",
		Args: argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.classifyTrain(cmd, args[0], model)
		},
	}
	train.Flags().StringVarP(&model, "model", "m", "", "where to write the model (default CSV.model.json)")
	var (
		split float64
		seed  uint64
	)
	eval := &cobra.Command{
		Use:   "eval CSV",
		Short: "Hold out part of each label's examples, train on the rest, and report accuracy and a confusion matrix",
		Args:  argsRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.classifyEval(cmd, args[0], split, seed)
		},
	}
	eval.Flags().Float64Var(&split, "split", 0.2, "fraction of each label's examples held out for testing")
	eval.Flags().Uint64Var(&seed, "seed", 1, "seed of the random split")
	cmd.AddCommand(train, eval)
	return cmd
}

// trainReport is what classify train prints with -o json.
type trainReport struct {
	CSV        string         `json:"csv"`
	Model      string         `json:"model"`
	Examples   int            `json:"examples"`
	Labels     map[string]int `json:"labels"`
	Vocabulary int            `json:"vocabulary"`
}

func (g *globals) classifyTrain(cmd *cobra.Command, csvPath, modelPath string) error {
	m, err := classify.TrainCSV(csvPath)
	if err != nil {
		return invalid(err)
	}
	if modelPath == "" {
		modelPath = classify.CachePath(csvPath)
	}
	if err := m.Save(modelPath); err != nil {
		return err
	}
	rep := trainReport{CSV: csvPath, Model: modelPath, Labels: map[string]int{}, Vocabulary: len(m.Features)}
	for _, l := range m.Labels {
		rep.Labels[l.Label] = l.Examples
		rep.Examples += l.Examples
	}
	w := cmd.OutOrStdout()
	if g.output == "json" {
		return writeJSON(w, rep)
	}
	rows := [][]string{{"LABEL", "EXAMPLES"}}
	for _, l := range m.Labels {
		rows = append(rows, []string{l.Label, strconv.Itoa(l.Examples)})
	}
	if err := table(w, rows); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d examples, %d labels, vocabulary of %d unigrams and bigrams\nwrote %s\n", rep.Examples, len(m.Labels), rep.Vocabulary, modelPath)
	return err
}

func (g *globals) classifyEval(cmd *cobra.Command, csvPath string, split float64, seed uint64) error {
	data, err := os.ReadFile(csvPath)
	if err != nil {
		return invalid(fmt.Errorf("read training data: %w", err))
	}
	examples, err := classify.ReadCSV(csvPath, data)
	if err != nil {
		return invalid(err)
	}
	res, err := classify.Eval(examples, split, seed)
	if err != nil {
		return invalid(fmt.Errorf("%s: %w", csvPath, err))
	}
	w := cmd.OutOrStdout()
	if g.output == "json" {
		return writeJSON(w, res)
	}
	fmt.Fprintf(w, "accuracy %.1f%% (%d of %d held-out examples; trained on %d, split %g, seed %d)\n\n",
		100*res.Accuracy, res.Correct, res.Test, res.Train, split, seed)
	header := []string{"ACTUAL \\ PREDICTED"}
	header = append(header, res.Labels...)
	rows := [][]string{header}
	for i, l := range res.Labels {
		row := []string{l}
		for _, n := range res.Confusion[i] {
			row = append(row, strconv.Itoa(n))
		}
		rows = append(rows, row)
	}
	return table(w, rows)
}
