package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseTeams(t *testing.T, open func(t *testing.T) store.Store) {
	newToken := func(name, ns string) *store.TokenCreateParams {
		return &store.TokenCreateParams{ID: newID(), Name: name, Hash: "hash-of-" + name, Role: store.RoleInvoker,
			Namespace: ns, CreatedBy: "admin", Now: at(0)}
	}
	t.Run("Tokens", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		p := newToken("ci", "a")
		p.ExpiresAt = ptr(at(time.Hour))
		tok, err := b.s.TokenCreate(b.ctx, p)
		if err != nil || tok.Name != "ci" || tok.ExpiresAt == nil {
			t.Fatalf("TokenCreate = %+v, %v", tok, err)
		}
		got, err := b.s.TokenByHash(b.ctx, "hash-of-ci")
		if err != nil || (got.ID != p.ID || got.Role != store.RoleInvoker || got.Namespace != "a" ||
			!got.CreatedAt.Equal(stored(at(0))) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(stored(at(time.Hour))) ||
			got.ExpiresAt.Location() != time.UTC || got.RevokedAt != nil) {
			t.Fatalf("TokenByHash = %+v, %v; want %+v", got, err, p)
		}
		if !got.Valid(at(time.Minute)) || got.Valid(at(time.Hour)) {
			t.Errorf("Valid: want valid before its expiry only")
		}
		if _, err := b.s.TokenByHash(b.ctx, "no such hash"); !errors.Is(err, routine.ErrNotFound) {
			t.Errorf("TokenByHash of an unknown hash: %v, want ErrNotFound", err)
		}
		taken := newToken("ci", "b")
		taken.Hash = "another"
		if _, err := b.s.TokenCreate(b.ctx, taken); !errors.Is(err, routine.ErrConflict) {
			t.Errorf("TokenCreate with a taken name: %v, want ErrConflict", err)
		}
		if _, err := b.s.TokenCreate(b.ctx, newToken("viewer-b", "b")); err != nil {
			t.Fatal(err)
		}
		for ns, want := range map[string][]string{"": {"ci", "viewer-b"}, "a": {"ci"}, "c": {}} {
			list, err := b.s.TokenList(b.ctx, &store.TokenListParams{Namespace: ns})
			var names []string
			for _, tk := range list {
				names = append(names, tk.Name)
			}
			if err != nil || len(names) != len(want) || (len(want) > 0 && !slices.Equal(names, want)) {
				t.Errorf("TokenList(%q) = %v, %v; want %v", ns, names, err, want)
			}
		}
		// Revoking is by name or id, within a namespace when given.
		if _, err := b.s.TokenRevoke(b.ctx, &store.TokenRevokeParams{Token: "ci", Namespace: "b", Now: at(time.Minute)}); !errors.Is(err, routine.ErrNotFound) {
			t.Errorf("TokenRevoke of another namespace's token: %v, want ErrNotFound", err)
		}
		for i, ref := range []string{"ci", p.ID} {
			rev, err := b.s.TokenRevoke(b.ctx, &store.TokenRevokeParams{Token: ref, Now: at(time.Duration(i+1) * time.Minute)})
			if err != nil || rev.RevokedAt == nil || !rev.RevokedAt.Equal(stored(at(time.Minute))) {
				t.Fatalf("TokenRevoke(%s) #%d = %+v, %v; want revoked at the first revocation", ref, i+1, rev, err)
			}
		}
		if got, err := b.s.TokenByHash(b.ctx, "hash-of-ci"); err != nil || got.RevokedAt == nil || got.Valid(at(time.Second)) {
			t.Errorf("TokenByHash after revoke = %+v, %v; want revoked", got, err)
		}
		if _, err := b.s.TokenRevoke(b.ctx, &store.TokenRevokeParams{Token: "nobody", Now: at(0)}); !errors.Is(err, routine.ErrNotFound) {
			t.Errorf("TokenRevoke of no token: %v, want ErrNotFound", err)
		}
	})

	t.Run("Revocations", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if _, err := b.s.TokenCreate(b.ctx, newToken("ci", "a")); err != nil {
			t.Fatal(err)
		}
		ch := b.s.TokenRevocations(b.ctx)
		// The first wake-up says the channel hears revocations: after it,
		// a revocation is sure to wake it.
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("TokenRevocations never came live")
		}
		if _, err := b.s.TokenRevoke(b.ctx, &store.TokenRevokeParams{Token: "ci", Now: at(0)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("a revocation did not wake TokenRevocations")
		}
	})

	t.Run("Bootstrap", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
		)
		for i := range 4 {
			wg.Go(func() {
				p := newToken("bootstrap", store.DefaultNamespace)
				p.Hash = p.Hash + string(rune('a'+i))
				ok, err := b.s.TokenBootstrap(b.ctx, p)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					created++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if created != 1 {
			t.Fatalf("concurrent TokenBootstrap created %d tokens, want 1", created)
		}
		if ok, err := b.s.TokenBootstrap(b.ctx, newToken("again", "x")); ok || err != nil {
			t.Errorf("TokenBootstrap with a token there = %v, %v; want false", ok, err)
		}
	})

	t.Run("Namespaces", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if _, err := b.s.NamespaceGet(b.ctx, "eu"); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("NamespaceGet of a namespace never set: %v, want ErrNotFound", err)
		}
		for _, ns := range []*store.Namespace{
			{Name: "eu", Regions: []string{"eu-west"}, UpdatedAt: at(0)},
			{Name: "eu", Regions: []string{"eu-west", "eu-central"}, MaxRunning: 3, MaxQueued: 50, UpdatedAt: at(time.Hour)},
			{Name: "any", UpdatedAt: at(0)},
		} {
			if err := b.s.NamespacePut(b.ctx, ns); err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.s.NamespaceGet(b.ctx, "eu")
		if err != nil || !slices.Equal(got.Regions, []string{"eu-west", "eu-central"}) || got.MaxRunning != 3 || got.MaxQueued != 50 ||
			!got.UpdatedAt.Equal(stored(at(time.Hour))) {
			t.Fatalf("NamespaceGet = %+v, %v", got, err)
		}
		if !got.AllowsRegion("eu-central") || got.AllowsRegion("us-east") || got.AllowsRegion("") {
			t.Errorf("AllowsRegion of %v is wrong", got.Regions)
		}
		list, err := b.s.NamespaceList(b.ctx)
		if err != nil || len(list) != 2 || list[0].Name != "any" || list[0].Regions != nil || list[0].MaxRunning != 0 ||
			list[1].Name != "eu" || list[1].MaxQueued != 50 {
			t.Fatalf("NamespaceList = %+v, %v", list, err)
		}
	})

	t.Run("Actions", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for i, a := range []store.Action{
			{Actor: "ci", Namespace: "a", Action: "push", Target: "hello", Outcome: store.OutcomeOK},
			{Actor: "ops", Namespace: "b", Action: "secret.set", Target: "API_KEY", Outcome: store.OutcomeDenied, Detail: "403"},
			{Actor: "ci", Namespace: "a", Action: "run.create", Target: "hello", Outcome: store.OutcomeOK},
		} {
			a.Time, a.Role, a.Source = at(time.Duration(i)*time.Hour), store.RoleDeployer, "127.0.0.1"
			if err := b.s.ActionAppend(b.ctx, &a); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			p    store.ActionListParams
			want []string
		}{
			{store.ActionListParams{}, []string{"push", "secret.set", "run.create"}},
			{store.ActionListParams{Actor: "ci"}, []string{"push", "run.create"}},
			{store.ActionListParams{Namespace: "b"}, []string{"secret.set"}},
			{store.ActionListParams{Since: at(time.Hour)}, []string{"secret.set", "run.create"}},
			{store.ActionListParams{Limit: 1}, []string{"run.create"}},
		} {
			list, err := b.s.ActionList(b.ctx, &c.p)
			var got []string
			for _, a := range list {
				got = append(got, a.Action)
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ActionList(%+v) = %v, %v; want %v", c.p, got, err, c.want)
			}
		}
		list, _ := b.s.ActionList(b.ctx, &store.ActionListParams{Namespace: "b"})
		if a := list[0]; a.Seq == 0 || !a.Time.Equal(stored(at(time.Hour))) || a.Time.Location() != time.UTC || a.Role != store.RoleDeployer ||
			a.Source != "127.0.0.1" || a.Target != "API_KEY" || a.Outcome != store.OutcomeDenied || a.Detail != "403" {
			t.Errorf("ActionList gave %+v", a)
		}
	})

	t.Run("RevisionNamespace", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		put := func(ns, hash string) (*store.Revision, error) {
			rev, _, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "hello", Namespace: ns, Hash: hash,
				Bundle: []byte(hash), Now: at(0)})
			return rev, err
		}
		if rev, err := put("team-a", "h1"); err != nil || rev.Namespace != "team-a" {
			t.Fatalf("RevisionPut = %+v, %v; want namespace team-a", rev, err)
		}
		for _, hash := range []string{"h1", "h2"} {
			if _, err := put("team-b", hash); !errors.Is(err, routine.ErrConflict) {
				t.Errorf("RevisionPut of team-a's routine from team-b: %v, want ErrConflict", err)
			}
		}
		if rev, err := put("", "h3"); !errors.Is(err, routine.ErrConflict) {
			t.Errorf("RevisionPut without a namespace = %+v, %v; want ErrConflict (the default namespace's)", rev, err)
		}
		if rev, _, err := b.s.RevisionPut(b.ctx, &store.RevisionPutParams{Routine: "other", Hash: "h1", Now: at(0)}); err != nil || rev.Namespace != store.DefaultNamespace {
			t.Errorf("RevisionPut without a namespace = %+v, %v; want the default namespace", rev, err)
		}
		cur, err := b.s.RevisionCurrent(b.ctx)
		if err != nil || len(cur) != 2 || cur[0].Namespace != "team-a" || cur[1].Namespace != store.DefaultNamespace {
			t.Errorf("RevisionCurrent = %+v, %v", cur, err)
		}
	})

	t.Run("RunsOfRoutines", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		for _, name := range []string{"a1", "a2", "b1"} {
			b.createRun(t, func(p *store.RunCreateParams) { p.Routine = name })
		}
		for _, c := range []struct {
			routines []string
			want     int
		}{{nil, 3}, {[]string{}, 0}, {[]string{"a1", "a2"}, 2}, {[]string{"b1", "zz"}, 1}} {
			runs, err := b.s.RunList(b.ctx, &store.RunListParams{Routines: c.routines})
			if err != nil || len(runs) != c.want {
				t.Errorf("RunList(Routines: %#v) = %d runs, %v; want %d", c.routines, len(runs), err, c.want)
			}
		}
	})
}
