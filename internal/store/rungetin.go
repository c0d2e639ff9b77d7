package store

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
)

// RunFinder is the part of Store that RunGetIn reads.
type RunFinder interface {
	RunGet(ctx context.Context, id string) (*routine.Run, error)
	RunList(ctx context.Context, p *RunListParams) ([]*routine.Run, error)
}

// RunGetIn returns the run whose id, or unique prefix of one, is id, among
// the runs of routines only (nil: of any routine). A run of another
// routine is not found: it neither makes a prefix ambiguous nor is named
// in the error that says one is, so that a caller who sees one namespace
// learns nothing of another's runs.
func RunGetIn(ctx context.Context, st RunFinder, id string, routines []string) (*routine.Run, error) {
	run, err := st.RunGet(ctx, id)
	var ambiguous *routine.AmbiguousIDError
	switch {
	case routines == nil || err == nil && slices.Contains(routines, run.Routine):
		return run, err
	case err != nil && !errors.As(err, &ambiguous):
		return nil, err
	}
	// Another routine's run, or several runs: the prefix among the runs
	// of routines.
	list, err := st.RunList(ctx, &RunListParams{IDPrefix: id, Routines: routines, Limit: PrefixLimit})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b *routine.Run) int { return strings.Compare(a.ID, b.ID) })
	found, err := ResolvePrefix(id, list)
	if err != nil {
		return nil, err
	}
	return st.RunGet(ctx, found.ID)
}
