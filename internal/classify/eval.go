package classify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// EvalResult is how a model trained on part of the examples did on the
// rest.
type EvalResult struct {
	Labels   []string `json:"labels"`
	Train    int      `json:"train"`
	Test     int      `json:"test"`
	Correct  int      `json:"correct"`
	Accuracy float64  `json:"accuracy"`
	// Confusion[i][j] counts the held-out examples of Labels[i] that the
	// model labelled Labels[j].
	Confusion [][]int `json:"confusion"`
}

// Eval holds out the fraction split of the examples of each label (at
// least one, and never all of them), chosen at random from seed, trains
// on the others and predicts the held-out ones. The same examples, split
// and seed give the same result.
func Eval(examples []Example, split float64, seed uint64) (*EvalResult, error) {
	if split <= 0 || split >= 1 {
		return nil, fmt.Errorf("split %v must be between 0 and 1", split)
	}
	byLabel := map[string][]Example{}
	var labels []string
	for _, e := range examples {
		if _, ok := byLabel[e.Label]; !ok {
			labels = append(labels, e.Label)
		}
		byLabel[e.Label] = append(byLabel[e.Label], e)
	}
	slices.Sort(labels)
	rng := rand.New(rand.NewPCG(seed, seed))
	var train, test []Example
	for _, l := range labels {
		es := slices.Clone(byLabel[l])
		if len(es) < 2 {
			return nil, fmt.Errorf("label %q has %d example: holding one out needs at least two of each label", l, len(es))
		}
		rng.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		n := min(max(int(math.Round(split*float64(len(es)))), 1), len(es)-1)
		test = append(test, es[:n]...)
		train = append(train, es[n:]...)
	}
	m, err := Train(train)
	if err != nil {
		return nil, err
	}
	res := &EvalResult{Labels: labels, Train: len(train), Test: len(test), Confusion: make([][]int, len(labels))}
	for i := range res.Confusion {
		res.Confusion[i] = make([]int, len(labels))
	}
	for _, e := range test {
		p := m.Predict(e.Text)
		res.Confusion[slices.Index(labels, e.Label)][slices.Index(labels, p.Label)]++
		if p.Label == e.Label {
			res.Correct++
		}
	}
	res.Accuracy = float64(res.Correct) / float64(res.Test)
	return res, nil
}
