package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/repeat"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// AuditSink is where the resolver appends its audit records.
type AuditSink interface {
	AuditAppend(ctx context.Context, records []*store.AuditRecord) error
}

// ResolverConfig is what a Resolver is built from. Providers and Audit are
// required.
type ResolverConfig struct {
	Providers []Provider
	// Default names the providers tried, in order, for a secret declared
	// without from:; builtin then env when empty.
	Default []string
	Audit   AuditSink
	Now     func() time.Time // time.Now when nil
	// Tries bounds the tries of a resolution that fails transiently (3
	// when 0); Backoff is the wait before the second (100ms when 0), each
	// wait three times the one before.
	Tries   int
	Backoff time.Duration
	// Project is the directory whose vault the builtin provider reads,
	// named when a secret is not set so the operator knows where to set it.
	Project string
}

// Resolver resolves the secrets a routine declares, at the start of each
// of its runs, through their providers, and appends an audit record for
// each: no record, no value. Nothing is cached across calls.
type Resolver struct {
	providers map[string]Provider
	chain     []Provider
	audit     AuditSink
	now       func() time.Time
	tries     int
	backoff   time.Duration
	project   string
	// lookups are the triggers' secrets that fail to resolve: a trigger
	// retries every few seconds (an email trigger) or at each call (a
	// webhook), and the audit log records such a failure once, then the
	// resolution that ends it.
	lookups *repeat.Limiter
	// resolved hears of every resolution (OnResolved); nil: nobody.
	resolved func(routine, provider string, err error)
}

// NewResolver returns a resolver built from cfg.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	r := &Resolver{providers: map[string]Provider{}, audit: cfg.Audit, now: cfg.Now, tries: cfg.Tries, backoff: cfg.Backoff, project: cfg.Project}
	for _, p := range cfg.Providers {
		r.providers[p.Name()] = p
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.lookups = repeat.New(r.now)
	if r.tries <= 0 {
		r.tries = 3
	}
	if r.backoff <= 0 {
		r.backoff = 100 * time.Millisecond
	}
	names := cfg.Default
	if len(names) == 0 {
		names = []string{"builtin", "env"}
	}
	for _, n := range names {
		p, ok := r.providers[n]
		if !ok {
			return nil, fmt.Errorf("default secrets provider %q is not one of %s", n, strings.Join(r.names(), ", "))
		}
		r.chain = append(r.chain, p)
	}
	return r, nil
}

// OnResolved registers observe to hear of every resolution, for a run or
// a trigger: the routine, the provider that answered (or was asked last)
// and the error, nil when the secret resolved — never the value. Call it
// before the resolver resolves anything.
func (r *Resolver) OnResolved(observe func(routine, provider string, err error)) {
	r.resolved = observe
}

// observe tells the observer of a resolution, if there is one.
func (r *Resolver) observe(routineName, provider string, err error) {
	if r.resolved != nil {
		r.resolved(routineName, provider, err)
	}
}

// names lists the providers' names.
func (r *Resolver) names() []string {
	var out []string
	for n := range r.providers {
		out = append(out, n)
	}
	return out
}

// splitFrom cuts a from: value into the provider name and its reference.
func splitFrom(from string) (provider, ref string, err error) {
	provider, ref, ok := strings.Cut(from, ":")
	if !ok || provider == "" || ref == "" {
		return "", "", fmt.Errorf("from: %q must be <provider>:<reference>, such as vault:kv/data/slack#bot_token", from)
	}
	return provider, ref, nil
}

// CheckNamespace refuses, before a routine of namespace is admitted (a
// push), a secret it declares from a provider other than the builtin
// vault: outside the default namespace, its runs could not resolve it
// (resolveIn). The error says what to write instead.
func CheckNamespace(namespace string, refs []routine.SecretRef) error {
	if namespace == "" || namespace == store.DefaultNamespace {
		return nil
	}
	for _, ref := range refs {
		if provider, _, err := splitFrom(ref.From); err == nil && provider != "builtin" {
			return fmt.Errorf("secret %s: from: %s: a routine of namespace %s resolves secrets only from its namespace's builtin vault (the %s provider holds the deployment's credentials): drop from: and store the value with `routines secrets set %s` as a deployer of %s",
				ref.Name, ref.From, namespace, provider, ref.Name, namespace)
		}
	}
	return nil
}

// Validate checks declared secrets when a routine is loaded, without the
// network: each from: names a known provider and a reference it accepts.
// The error names every secret at fault.
func (r *Resolver) Validate(refs []routine.SecretRef) error {
	var errs []error
	for _, ref := range refs {
		if ref.From == "" {
			continue
		}
		if _, _, err := r.provider(ref); err != nil {
			errs = append(errs, fmt.Errorf("secret %s: %w", ref.Name, err))
		}
	}
	return errors.Join(errs...)
}

// provider returns the provider and reference of a secret declared with from:.
func (r *Resolver) provider(ref routine.SecretRef) (Provider, string, error) {
	name, pref, err := splitFrom(ref.From)
	if err != nil {
		return nil, "", err
	}
	p, ok := r.providers[name]
	if !ok {
		return nil, "", fmt.Errorf("from: provider %q is not one of %s", name, strings.Join(r.names(), ", "))
	}
	if err := p.Validate(pref); err != nil {
		return nil, "", fmt.Errorf("from: %w", err)
	}
	return p, pref, nil
}

// Resolve returns the values of the secrets routine rt declares, by name,
// for its run: a routine of a namespace resolves that namespace's secrets
// (Scope). The error names the first declared secret that failed, never a
// value. It implements the engine's SecretSource.
func (r *Resolver) Resolve(ctx context.Context, rt *routine.Routine, run *routine.Run) (map[string]string, error) {
	refs := rt.Secrets
	if len(refs) == 0 {
		return map[string]string{}, nil
	}
	values := make([]string, len(refs))
	records := make([]*store.AuditRecord, len(refs))
	errs := make([]error, len(refs))
	one := func(i int) {
		var provider string
		values[i], provider, errs[i] = r.resolve(ctx, rt.Namespace, refs[i])
		records[i] = r.record(rt.Namespace, run, refs[i], provider, errs[i])
		r.observe(run.Routine, provider, errs[i])
	}
	// Secrets of remote providers are fetched side by side; local ones
	// (the builtin vault, the environment) take microseconds each, less
	// than a goroutine's hand-off, and are resolved here meanwhile.
	var wg sync.WaitGroup
	for i, ref := range refs {
		if r.remote(ref) {
			wg.Go(func() { one(i) })
		}
	}
	for i, ref := range refs {
		if !r.remote(ref) {
			one(i)
		}
	}
	wg.Wait()
	if err := r.appendAudit(ctx, records); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(refs))
	for i, ref := range refs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[ref.Name] = values[i]
	}
	return out, nil
}

// remote reports whether a secret comes from a provider over the network:
// one named in from: other than builtin and env.
func (r *Resolver) remote(ref routine.SecretRef) bool {
	name, _, err := splitFrom(ref.From)
	return err == nil && name != "builtin" && name != "env"
}

// record is the audit record of one resolution for a routine of namespace.
func (r *Resolver) record(namespace string, run *routine.Run, ref routine.SecretRef, provider string, err error) *store.AuditRecord {
	rec := &store.AuditRecord{Time: r.now(), Action: store.AuditResolve, Secret: Qualified(namespace, ref.Name), Provider: provider,
		Routine: run.Routine, RunID: run.ID, OK: err == nil}
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

// appendAudit appends records to the audit log; no value is handed out
// when it fails.
func (r *Resolver) appendAudit(ctx context.Context, records []*store.AuditRecord) error {
	if err := r.audit.AuditAppend(context.WithoutCancel(ctx), records); err != nil {
		return fmt.Errorf("secrets are not handed out without their audit record: %w", err)
	}
	return nil
}

// Lookup resolves one secret routine rt declares for one of its triggers
// (a webhook's signing secret, an email trigger's password), in its
// namespace, with its audit record; a failure that repeats the last one of
// the same routine and secret is not recorded again.
func (r *Resolver) Lookup(ctx context.Context, rt *routine.Routine, ref routine.SecretRef) (string, error) {
	value, provider, err := r.resolve(ctx, rt.Namespace, ref)
	r.observe(rt.Name, provider, err)
	key := rt.Name + "\x00" + ref.Name
	if err != nil && !r.lookups.Fail(key, err.Error()).First {
		return "", err
	}
	if err == nil {
		r.lookups.OK(key)
	}
	if aerr := r.appendAudit(ctx, []*store.AuditRecord{r.record(rt.Namespace, &routine.Run{Routine: rt.Name}, ref, provider, err)}); aerr != nil {
		return "", aerr
	}
	return value, err
}

// resolve resolves one secret of a routine of namespace and names the
// provider that answered (or was asked last).
func (r *Resolver) resolve(ctx context.Context, namespace string, ref routine.SecretRef) (value, provider string, err error) {
	if namespace != "" && namespace != store.DefaultNamespace {
		return r.resolveIn(ctx, namespace, ref)
	}
	if ref.From != "" {
		p, pref, err := r.provider(ref)
		if err != nil {
			return "", "", fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		v, err := r.try(ctx, func(ctx context.Context) (string, error) { return p.Resolve(ctx, pref) })
		if err != nil {
			return "", p.Name(), fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		return v, p.Name(), nil
	}
	for _, p := range r.chain {
		v, err := r.try(ctx, func(ctx context.Context) (string, error) { return p.Resolve(ctx, ref.Name) })
		switch {
		case err == nil:
			return v, p.Name(), nil
		case !errors.Is(err, ErrNotFound):
			return "", p.Name(), fmt.Errorf("secret %s: %w", ref.Name, err)
		}
	}
	where := ""
	if r.project != "" {
		where = " in project " + r.project
	}
	return "", r.chain[len(r.chain)-1].Name(), fmt.Errorf("secret %s is not set%s: store it with `routines secrets set %s` there, or set %s in the environment of the daemon: %w",
		ref.Name, where, ref.Name, ref.Name, ErrNotFound)
}

// resolveIn resolves a secret of a routine of a namespace other than the
// default one: only through a provider that keeps secrets per namespace,
// in that namespace. The environment and the external vaults hold the
// deployment's credentials, which are its operators', not a team's.
func (r *Resolver) resolveIn(ctx context.Context, namespace string, ref routine.SecretRef) (value, provider string, err error) {
	p, pref := r.namespaced(), ref.Name
	if ref.From != "" {
		var named Provider
		if named, pref, err = r.provider(ref); err != nil {
			return "", "", fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		if _, ok := named.(NamespacedProvider); !ok {
			return "", named.Name(), fmt.Errorf("secret %s: from: %s: a routine of namespace %s resolves secrets only from its namespace's builtin vault: the %s provider holds the deployment's credentials; ask an operator, or store the value with `routines secrets set %s` as a deployer of %s",
				ref.Name, ref.From, namespace, named.Name(), ref.Name, namespace)
		}
	}
	if p == nil {
		return "", "", fmt.Errorf("secret %s: this deployment keeps no builtin vault, the only source of a namespace's secrets", ref.Name)
	}
	v, err := r.try(ctx, func(ctx context.Context) (string, error) { return p.ResolveIn(ctx, namespace, pref) })
	if errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("secret %s is not set in namespace %s: store it with `routines secrets set %s` as a deployer of %s: %w",
			ref.Name, namespace, pref, namespace, ErrNotFound)
	} else if err != nil {
		err = fmt.Errorf("secret %s: %w", ref.Name, err)
	}
	return v, p.Name(), err
}

// namespaced returns the provider that keeps secrets per namespace, nil
// when there is none.
func (r *Resolver) namespaced() NamespacedProvider {
	for _, p := range r.providers {
		if n, ok := p.(NamespacedProvider); ok {
			return n
		}
	}
	return nil
}

// try resolves with resolve, trying again after a transient failure.
func (r *Resolver) try(ctx context.Context, resolve func(context.Context) (string, error)) (string, error) {
	wait := r.backoff
	for n := 1; ; n++ {
		v, err := resolve(ctx)
		if err == nil || !IsTransient(err) || n == r.tries {
			return v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait *= 3
	}
}
