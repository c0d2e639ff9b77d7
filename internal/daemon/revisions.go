package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/bundle"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/spec"
	"github.com/routines-dev/routines/internal/store"
)

// Revisions is the service that keeps a remote daemon's catalog in step
// with the routines pushed to the store: at start and then every Poll, it
// reads the current revisions, loads each new one from its bundle
// (fetched once into the bundle cache) and hands it to the catalog and,
// on a server, to the triggers. It also loads the older revisions that
// runs queued before a push still execute.
type Revisions struct {
	cfg     RevisionsConfig
	catalog *scheduler.Catalog

	mu     sync.Mutex
	loaded map[string]*routine.Routine // by hash; held in the cache for the process's life
	holds  []func()
	poller *Poller
}

// RevisionsConfig is what Revisions is built from. Store and Cache are
// required.
type RevisionsConfig struct {
	Store store.Store
	Cache *bundle.Cache
	// Triggers, when set (a server), get every new current revision.
	Triggers *Triggers
	Logger   *slog.Logger
	// Poll is how often the current revisions are read again; 5s when 0.
	Poll time.Duration
}

// NewRevisions returns the service, and the catalog it fills: a catalog
// whose runs execute the revision they were queued with.
func NewRevisions(cfg RevisionsConfig) *Revisions {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	rv := &Revisions{cfg: cfg, loaded: map[string]*routine.Routine{}}
	rv.catalog = scheduler.NewRevisionCatalog(nil, rv.Load)
	rv.poller = &Poller{Sync: rv.Sync, Poll: cfg.Poll, Logger: cfg.Logger,
		Failed: "read the current revisions; the ones read before are served", Recovered: "current revisions read again"}
	return rv
}

// Catalog is the catalog the service keeps.
func (rv *Revisions) Catalog() *scheduler.Catalog { return rv.catalog }

// Start loads the current revisions, then keeps reading them every Poll
// until Stop (see Poller).
func (rv *Revisions) Start(ctx context.Context) error {
	return rv.poller.Start(ctx)
}

// Stop stops the polling and lets the cache evict what it held.
func (rv *Revisions) Stop(ctx context.Context) error {
	_ = rv.poller.Stop(ctx)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for _, release := range rv.holds {
		release()
	}
	rv.holds = nil
	return nil
}

// Sync reads the current revisions once and applies what changed: a new
// revision replaces its routine in the catalog (and its triggers).
// Routines are never removed here: there is no delete yet.
func (rv *Revisions) Sync(ctx context.Context) error {
	current, err := rv.cfg.Store.RevisionCurrent(ctx)
	if err != nil {
		return err
	}
	for _, rev := range current {
		prev, had := rv.catalog.Get(rev.Routine)
		if had && prev.Revision == rev.Hash {
			continue
		}
		r, err := rv.load(ctx, rev.Routine, rev.Hash, namespaceOf(rev))
		if err != nil {
			rv.cfg.Logger.Error("load a pushed revision; the previous one stays", "routine", rev.Routine, "revision", bundle.Short(rev.Hash), "err", err)
			continue
		}
		if !had {
			prev = nil
		}
		if rv.cfg.Triggers != nil {
			if err := rv.cfg.Triggers.Set(ctx, r, prev); err != nil {
				rv.cfg.Logger.Error("start the triggers of a pushed revision; the previous one stays", "routine", rev.Routine, "revision", bundle.Short(rev.Hash), "err", err)
				continue
			}
		}
		rv.catalog.Set(r)
		rv.cfg.Logger.Info("serving revision", "routine", r.Name, "revision", bundle.Short(rev.Hash))
	}
	return nil
}

// Load returns the routine name at revision hash, from its bundle, in
// its namespace: what its runs' secrets and events are scoped by, so a
// run of a revision other than the current one (queued before a push)
// carries it as well.
func (rv *Revisions) Load(ctx context.Context, name, hash string) (*routine.Routine, error) {
	rv.mu.Lock()
	r, ok := rv.loaded[hash]
	rv.mu.Unlock()
	if ok && r.Name == name {
		return r, nil
	}
	// A routine's namespace is that of its first push, whatever the
	// revision; its newest record says it.
	list, err := rv.cfg.Store.RevisionList(ctx, &store.RevisionListParams{Routine: name, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("the namespace of %s: %w", name, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("the namespace of %s: no revision is recorded: %w", name, routine.ErrNotFound)
	}
	return rv.load(ctx, name, hash, namespaceOf(list[0]))
}

// load is Load of a routine whose namespace is known ("" for the default
// one).
func (rv *Revisions) load(ctx context.Context, name, hash, namespace string) (*routine.Routine, error) {
	rv.mu.Lock()
	r, ok := rv.loaded[hash]
	rv.mu.Unlock()
	if ok && r.Name == name {
		return r, nil
	}
	dir, _, release, err := rv.cfg.Cache.Get(ctx, hash, func(ctx context.Context) (io.ReadCloser, error) {
		data, err := rv.cfg.Store.RevisionBundle(ctx, hash)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("fetch revision %s of %s: %w", bundle.Short(hash), name, err)
	}
	r, err = loadBundle(dir, name, hash)
	if err != nil {
		release()
		return nil, err
	}
	r.Namespace = namespace
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if prev, ok := rv.loaded[hash]; ok && prev.Name == name {
		release()
		return prev, nil
	}
	rv.loaded[hash] = r
	rv.holds = append(rv.holds, release)
	return r, nil
}

// loadBundle reads the routine of an extracted bundle in dir: its
// revision is the bundle's hash, and it must be called name.
func loadBundle(dir, name, hash string) (*routine.Routine, error) {
	r, err := spec.Load(filepath.Join(dir, "routine.yaml"))
	if err != nil {
		return nil, err
	}
	if r.Name != name && name != "" {
		return nil, fmt.Errorf("revision %s holds routine %q, not %q", bundle.Short(hash), r.Name, name)
	}
	r.Revision, r.Sealed = hash, true
	return r, nil
}

// namespaceOf is the namespace a routine carries: "" for the default one,
// as the routines of a project's files.
func namespaceOf(rev *store.Revision) string {
	if rev.Namespace == store.DefaultNamespace {
		return ""
	}
	return rev.Namespace
}
