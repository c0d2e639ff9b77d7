package store

import "github.com/routines-dev/routines/internal/routine"

// MinPrefix is the shortest prefix of a run id that RunGet resolves:
// shorter, an id is looked up whole.
const MinPrefix = 6

// ambiguousShown is how many of the runs an ambiguous prefix matches its
// error names.
const ambiguousShown = 5

// PrefixLimit is how many runs a driver looks up, in id order, of those
// whose ids start with a prefix: one more than an ambiguous prefix's error
// names, to tell whether there are more.
const PrefixLimit = ambiguousShown + 1

// ResolvePrefix returns what RunGet returns for a prefix, given the runs
// whose ids start with it (the first ones in id order, up to PrefixLimit):
// the run whose id it is, or the one run it starts; none wraps
// routine.ErrNotFound, several an *routine.AmbiguousIDError.
func ResolvePrefix(prefix string, found []*routine.Run) (*routine.Run, error) {
	switch {
	case len(found) == 0:
		return nil, routine.ErrNotFound
	case found[0].ID == prefix || len(found) == 1:
		return found[0], nil
	}
	amb := &routine.AmbiguousIDError{Prefix: prefix, More: len(found) > ambiguousShown}
	for _, r := range found[:min(len(found), ambiguousShown)] {
		amb.IDs = append(amb.IDs, r.ID)
	}
	return nil, amb
}
