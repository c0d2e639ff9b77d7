package scheduler

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Catalog holds the routines the daemon knows, by name: their current
// revisions. It is safe for concurrent use.
type Catalog struct {
	mu       sync.RWMutex
	routines map[string]*routine.Routine
	// namespaces maps the namespaces with a max_running to it; empty:
	// none has one (the claims' fast path).
	namespaces map[string]int
	// revision finds a routine at a revision other than the current one;
	// nil: the current one serves every run (a local daemon runs the
	// routine files as they are now).
	revision func(ctx context.Context, name, revision string) (*routine.Routine, error)
}

// NewCatalog returns a catalog of rs; names must be unique.
func NewCatalog(rs []*routine.Routine) *Catalog {
	c := &Catalog{routines: make(map[string]*routine.Routine, len(rs))}
	for _, r := range rs {
		c.routines[r.Name] = r
	}
	return c
}

// NewRevisionCatalog returns a catalog of rs whose runs execute the
// revision they were queued with: one other than the current one comes
// from revision (remote mode: a pushed bundle).
func NewRevisionCatalog(rs []*routine.Routine, revision func(ctx context.Context, name, revision string) (*routine.Routine, error)) *Catalog {
	c := NewCatalog(rs)
	c.revision = revision
	return c
}

// Routine returns the routine that a run of name queued at revision
// executes: the current one, when it has that revision or the catalog
// keeps no other; else the revision's. A routine the catalog does not
// know wraps routine.ErrNotFound.
func (c *Catalog) Routine(ctx context.Context, name, revision string) (*routine.Routine, error) {
	cur, ok := c.Get(name)
	switch {
	case ok && (c.revision == nil || revision == "" || cur.Revision == revision):
		return cur, nil
	case c.revision != nil && revision != "":
		return c.revision(ctx, name, revision)
	}
	return nil, fmt.Errorf("routine %q: %w", name, routine.ErrNotFound)
}

// Get returns the routine called name.
func (c *Catalog) Get(name string) (*routine.Routine, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.routines[name]
	return r, ok
}

// Set adds or replaces a routine.
func (c *Catalog) Set(r *routine.Routine) {
	c.mu.Lock()
	c.routines[r.Name] = r
	c.mu.Unlock()
}

// All returns the routines sorted by name.
func (c *Catalog) All() []*routine.Routine {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*routine.Routine, 0, len(c.routines))
	for _, r := range c.routines {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ceilings maps each routine with concurrency.max to that ceiling, as
// store.RunClaimParams wants it.
func (c *Catalog) Ceilings() map[string]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string]int{}
	for name, r := range c.routines {
		if r.Concurrency != nil && r.Concurrency.Max > 0 {
			out[name] = r.Concurrency.Max
		}
	}
	return out
}

// SetNamespaceCeilings replaces the ceilings of namespaces: the most runs
// of a namespace's routines that may be running at once (max_running),
// by namespace name; a namespace not in the map has none.
func (c *Catalog) SetNamespaceCeilings(ceilings map[string]int) {
	c.mu.Lock()
	c.namespaces = ceilings
	c.mu.Unlock()
}

// Groups returns the ceilings of namespaces as store.RunClaimParams wants
// them: the namespace of each routine of a namespace with a ceiling, and
// those ceilings. Both are nil when no namespace has one.
func (c *Catalog) Groups() (groups map[string]string, ceilings map[string]int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.namespaces) == 0 {
		return nil, nil
	}
	groups = map[string]string{}
	for name, r := range c.routines {
		ns := r.Namespace
		if ns == "" {
			ns = store.DefaultNamespace
		}
		if c.namespaces[ns] > 0 {
			groups[name] = ns
		}
	}
	return groups, c.namespaces
}

// Remove forgets the routine called name.
func (c *Catalog) Remove(name string) {
	c.mu.Lock()
	delete(c.routines, name)
	c.mu.Unlock()
}

// Reservations maps each routine with concurrency.reserved to it.
func (c *Catalog) Reservations() map[string]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out map[string]int
	for name, r := range c.routines {
		if r.Concurrency != nil && r.Concurrency.Reserved > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[name] = r.Concurrency.Reserved
		}
	}
	return out
}
