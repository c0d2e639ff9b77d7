package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// policyReread is how long the max_queued of namespaces read from the
// store is trusted: a `routines namespaces set --max-queued` holds on
// every server of a deployment within it (at once on the server that set
// it).
const policyReread = time.Second

// queuedCeilings is what full checks the namespaces' max_queued with: the
// ceilings read from the store at most every policyReread, and the
// estimate of each such namespace's queued runs, kept as the backlog's is.
type queuedCeilings struct {
	mu       sync.Mutex
	max      map[string]int // namespace → max_queued, of those with one
	at       time.Time      // of the last read; zero: to read
	backlogs map[string]*backlog
}

// forget makes the next check read the ceilings again.
func (q *queuedCeilings) forget() {
	q.mu.Lock()
	q.at = time.Time{}
	q.mu.Unlock()
}

// limits returns the max_queued of the namespaces with one, read with
// list when the last read is older than policyReread. The map is
// replaced, never changed: the caller may keep it.
func (q *queuedCeilings) limits(ctx context.Context, list func(context.Context) ([]*store.Namespace, error)) (map[string]int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.at.IsZero() || time.Since(q.at) > policyReread {
		policies, err := list(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the ceilings of namespaces: %w", err)
		}
		q.max, q.at = map[string]int{}, time.Now()
		for _, p := range policies {
			if p.MaxQueued > 0 {
				q.max[p.Name] = p.MaxQueued
			}
		}
	}
	return q.max, nil
}

// backlog returns the estimate of the queued runs of namespace ns.
func (q *queuedCeilings) backlog(ns string) *backlog {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.backlogs == nil {
		q.backlogs = map[string]*backlog{}
	}
	b := q.backlogs[ns]
	if b == nil {
		b = &backlog{}
		q.backlogs[ns] = b
	}
	return b
}

// namespaceFull returns a namespace of a routine of queuing that has as
// many runs queued as its max_queued (limit) allows, or "" when none has,
// and then counts the runs about to be queued in each namespace's
// estimate. A namespace's queued runs are those of its routines that this
// server serves, counted by name in the store.
func (s *Server) namespaceFull(ctx context.Context, queuing []*routine.Routine) (ns string, limit int, err error) {
	limits, err := s.ceilings.limits(ctx, s.cfg.Store.NamespaceList)
	if err != nil || len(limits) == 0 {
		return "", 0, err
	}
	adding := map[string]int{}
	for _, q := range queuing {
		adding[cmpNamespace(q.Namespace)]++
	}
	for ns, n := range adding {
		if limits[ns] <= 0 {
			continue
		}
		ok, err := s.ceilings.backlog(ns).admit(n, limits[ns], func() (int, error) {
			return s.countQueued(ctx, s.routinesOf(ns))
		})
		if err != nil || !ok {
			return ns, limits[ns], err
		}
	}
	return "", 0, nil
}

// routinesOf names the routines of namespace ns that the server serves.
func (s *Server) routinesOf(ns string) []string {
	names := []string{}
	for _, rt := range s.cfg.Routines.All() {
		if cmpNamespace(rt.Namespace) == ns {
			names = append(names, rt.Name)
		}
	}
	return names
}
