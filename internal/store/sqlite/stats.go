package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/routines-dev/routines/internal/store"
)

// Stats is replaced by the rollups of issue 13, being written now.
func (s *Store) Stats(ctx context.Context, p *store.StatsParams) ([]*store.Stats, error) {
	return nil, fmt.Errorf("stats: %w", errors.ErrUnsupported)
}
