package sqlite

import (
	"context"
	"database/sql"
)

// FoldRunEnds folds into the rollups the run ends that writers of the file
// other than a Store left in run_ends (the bulk loaders of the tests), as
// the next write of s would.
func FoldRunEnds(ctx context.Context, s *Store) error {
	return s.gc.write(ctx, func(context.Context, *sql.Tx) error { return nil })
}
