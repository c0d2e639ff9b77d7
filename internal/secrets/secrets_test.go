package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"filippo.io/age"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/sqlite"
)

// vault returns a builtin vault on a fresh store, with its key file in a
// temporary directory, and the store.
func vault(t *testing.T) (*secrets.Builtin, *sqlite.Store, secrets.KeySource) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys := secrets.KeySource{File: filepath.Join(dir, "config", "routines", "master.key")}
	return secrets.NewBuiltin(st, keys), st, keys
}

func TestBuiltinSetResolveRotate(t *testing.T) {
	t.Parallel()
	b, st, keys := vault(t)
	ctx := t.Context()
	if _, err := b.Resolve(ctx, "API_KEY"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Resolve before set: %v, want ErrNotFound", err)
	}
	for i, value := range []string{"first-value", "second-value"} {
		v, err := b.Set(ctx, store.DefaultNamespace, "API_KEY", value)
		if err != nil || v != i+1 {
			t.Fatalf("Set #%d = %d, %v", i+1, v, err)
		}
		got, err := b.Resolve(ctx, "API_KEY")
		if err != nil || got != value {
			t.Fatalf("Resolve after set #%d = %q, %v; want %q", i+1, got, err, value)
		}
	}
	// The key file was made on first use, private, in a private directory.
	fi, err := os.Stat(keys.File)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	if di, err := os.Stat(filepath.Dir(keys.File)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v %v, want mode 0700", di.Mode(), err)
	}
	// The store holds ciphertext only.
	sec, err := st.SecretGet(ctx, store.DefaultNamespace, "API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sec.Ciphertext), "second-value") || len(sec.Ciphertext) != 1+24+len("second-value")+16 {
		t.Errorf("stored ciphertext %q is not the sealed value", sec.Ciphertext)
	}
	// The data key is stored wrapped by age under the master key.
	wrapped, err := st.VaultKeyGet(ctx)
	if err != nil || !strings.HasPrefix(string(wrapped), "age-encryption.org/v1\n-> X25519 ") {
		t.Errorf("stored data key is not an age file: %q, %v", wrapped, err)
	}
	// set and rm are audited.
	if existed, err := b.Delete(ctx, store.DefaultNamespace, "API_KEY"); err != nil || !existed {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	recs, err := st.AuditList(ctx, &store.AuditListParams{Secret: "API_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action)
	}
	if got := strings.Join(actions, ","); got != "set,set,delete" {
		t.Errorf("audit actions %s, want set,set,delete", got)
	}
}

func TestBuiltinBadInput(t *testing.T) {
	t.Parallel()
	b, st, _ := vault(t)
	ctx := t.Context()
	for _, c := range []struct{ name, value, want string }{
		{"", "v", "needs a name"},
		{"lower", "v", "upper-case letters"},
		{"1ABC", "v", "upper-case letters"},
		{"A-B", "v", "upper-case letters"},
		{"EMPTY", "", "empty"},
		{"BIG", strings.Repeat("x", secrets.MaxValueBytes+1), "at most 65536"},
		{"BINARY", "\xff\xfe", "not UTF-8"},
	} {
		if _, err := b.Set(ctx, store.DefaultNamespace, c.name, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Set(%q, %d bytes) = %v, want an error with %q", c.name, len(c.value), err, c.want)
		}
	}
	// Nothing half-written.
	if list, err := st.SecretList(ctx, store.DefaultNamespace); err != nil || len(list) != 0 {
		t.Errorf("after refused sets: %d secrets, %v", len(list), err)
	}
	if _, err := b.Set(ctx, store.DefaultNamespace, "MAX", strings.Repeat("x", secrets.MaxValueBytes)); err != nil {
		t.Errorf("Set of exactly 64 KiB: %v", err)
	}
}

func TestMasterKeyProblems(t *testing.T) {
	t.Parallel()
	b, st, keys := vault(t)
	ctx := t.Context()
	const value = "the-value-0123"
	if _, err := b.Set(ctx, store.DefaultNamespace, "TOKEN", value); err != nil {
		t.Fatal(err)
	}
	// Another key: a clear error, never garbage.
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	wrong := secrets.NewBuiltin(st, secrets.KeySource{Env: other.String(), File: keys.File})
	_, err = wrong.Resolve(ctx, "TOKEN")
	if err == nil || !strings.Contains(err.Error(), "sealed under another master key than ROUTINES_MASTER_KEY") {
		t.Errorf("Resolve with another key: %v", err)
	}
	// A malformed key in the environment: named, not shown.
	bad := secrets.NewBuiltin(st, secrets.KeySource{Env: "AGE-SECRET-KEY-1NOTAKEY", File: keys.File})
	if _, err := bad.Resolve(ctx, "TOKEN"); err == nil || !strings.Contains(err.Error(), "ROUTINES_MASTER_KEY is not an age secret key") ||
		strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("Resolve with a malformed key: %v", err)
	}
	// A tampered ciphertext.
	sec, err := st.SecretGet(ctx, store.DefaultNamespace, "TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte{}, sec.Ciphertext...)
	tampered[len(tampered)-5] ^= 1
	if _, err := st.SecretPut(ctx, &store.SecretPutParams{Namespace: store.DefaultNamespace, Name: "TOKEN", Ciphertext: tampered, Now: sec.RotatedAt}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, "TOKEN"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Resolve of a tampered ciphertext: %v", err)
	}
	// A ciphertext moved to another name.
	if _, err := st.SecretPut(ctx, &store.SecretPutParams{Namespace: store.DefaultNamespace, Name: "OTHER", Ciphertext: sec.Ciphertext, Now: sec.RotatedAt}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(ctx, "OTHER"); err == nil || !strings.Contains(err.Error(), "belongs to another secret") {
		t.Errorf("Resolve of a moved ciphertext: %v", err)
	}
	// A key file others may read is refused; a missing one is named.
	if err := os.Chmod(keys.File, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.NewBuiltin(st, keys).Resolve(ctx, "OTHER"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Resolve with a key file of mode 0644: %v", err)
	}
	gone := secrets.KeySource{File: filepath.Join(t.TempDir(), "none.key")}
	if _, err := secrets.NewBuiltin(st, gone).Resolve(ctx, "OTHER"); !errors.Is(err, secrets.ErrNoMasterKey) {
		t.Errorf("Resolve without a key: %v, want ErrNoMasterKey", err)
	}
}

// flaky is a provider that fails transiently a number of times, then answers.
type flaky struct {
	fails int
	tries atomic.Int32
	err   error // returned instead once fails are spent, when set
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Validate(ref string) error {
	if ref == "bad" {
		return errors.New("bad reference")
	}
	return nil
}
func (f *flaky) Resolve(_ context.Context, ref string) (string, error) {
	n := int(f.tries.Add(1))
	if n <= f.fails {
		return "", secrets.Transient(errors.New("flaky: " + ref + ": 503"))
	}
	if f.err != nil {
		return "", f.err
	}
	return "value-of-" + ref, nil
}

func resolver(t *testing.T, env map[string]string, extra ...secrets.Provider) (*secrets.Resolver, *secrets.Builtin, *sqlite.Store) {
	t.Helper()
	b, st, _ := vault(t)
	providers := append([]secrets.Provider{b, secrets.Env{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}}, extra...)
	r, err := secrets.NewResolver(secrets.ResolverConfig{Providers: providers, Audit: st, Backoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r, b, st
}

func TestResolverChainAndFrom(t *testing.T) {
	t.Parallel()
	f := &flaky{fails: 2}
	r, b, st := resolver(t, map[string]string{"FROM_ENV": "env-value", "SHADOWED": "env-loses", "RENAMED_VAR": "renamed"}, f)
	ctx := t.Context()
	if _, err := b.Set(ctx, store.DefaultNamespace, "SHADOWED", "builtin-wins"); err != nil {
		t.Fatal(err)
	}
	run := &routine.Run{ID: "01RUN", Routine: "r"}
	got, err := r.Resolve(ctx, &routine.Routine{Name: run.Routine, Secrets: []routine.SecretRef{
		{Name: "FROM_ENV"}, {Name: "SHADOWED"}, {Name: "RENAMED", From: "env:RENAMED_VAR"}, {Name: "REMOTE", From: "flaky:x"},
	}}, run)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"FROM_ENV": "env-value", "SHADOWED": "builtin-wins", "RENAMED": "renamed", "REMOTE": "value-of-x"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if n := f.tries.Load(); n != 3 {
		t.Errorf("flaky provider tried %d times, want 3 (two transient failures)", n)
	}
	recs, err := st.AuditList(ctx, &store.AuditListParams{})
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:] // the set of SHADOWED
	providers := map[string]string{}
	for _, rec := range recs {
		if rec.Action != store.AuditResolve || rec.RunID != "01RUN" || rec.Routine != "r" || !rec.OK {
			t.Errorf("audit record %+v", rec)
		}
		providers[rec.Secret] = rec.Provider
	}
	if len(recs) != 4 || providers["FROM_ENV"] != "env" || providers["SHADOWED"] != "builtin" || providers["REMOTE"] != "flaky" {
		t.Errorf("audit: %d records, providers %v", len(recs), providers)
	}
}

func TestResolverFailures(t *testing.T) {
	t.Parallel()
	denied := &flaky{err: errors.New("flaky: x: permission denied (403)")}
	r, _, st := resolver(t, nil, denied)
	ctx := t.Context()
	run := &routine.Run{ID: "01RUN", Routine: "r"}
	_, err := r.Resolve(ctx, &routine.Routine{Name: run.Routine, Secrets: []routine.SecretRef{{Name: "MISSING"}}}, run)
	if !errors.Is(err, secrets.ErrNotFound) || !strings.Contains(err.Error(), "secret MISSING is not set") {
		t.Errorf("missing secret: %v", err)
	}
	_, err = r.Resolve(ctx, &routine.Routine{Name: run.Routine, Secrets: []routine.SecretRef{{Name: "DENIED", From: "flaky:x"}}}, run)
	if err == nil || !strings.Contains(err.Error(), "secret DENIED: flaky: x: permission denied") {
		t.Errorf("denied secret: %v", err)
	}
	if n := denied.tries.Load(); n != 1 {
		t.Errorf("a permanent failure was tried %d times, want 1", n)
	}
	recs, err := st.AuditList(ctx, &store.AuditListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].OK || recs[1].OK || !strings.Contains(recs[1].Error, "permission denied") {
		t.Errorf("audit of failures: %+v", recs)
	}
	// Validation at load, without resolving.
	err = r.Validate([]routine.SecretRef{{Name: "A", From: "nope:x"}, {Name: "B", From: "flaky:bad"}, {Name: "C", From: "novalue"}, {Name: "D", From: "env:OK"}})
	for _, want := range []string{`secret A: from: provider "nope" is not one of`, "secret B: from: bad reference", "secret C: from: \"novalue\" must be <provider>:<reference>"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "secret D") {
		t.Errorf("Validate faults a good reference: %v", err)
	}
}

// A trigger looking up a secret that is not set, again and again (an
// email trigger reconnecting, a webhook called), leaves one failure in the
// audit log, then the resolution that ends it; a run's failures are all
// recorded. The observer (metrics) hears of every resolution.
func TestLookupAuditsARepeatedFailureOnce(t *testing.T) {
	t.Parallel()
	r, b, st := resolver(t, nil)
	var observed []string
	r.OnResolved(func(routineName, provider string, err error) {
		observed = append(observed, fmt.Sprintf("%s %s %v", routineName, provider, errors.Is(err, secrets.ErrNotFound)))
	})
	ctx := t.Context()
	ref := routine.SecretRef{Name: "IMAP_PASSWORD"}
	for range 12 {
		if _, err := r.Lookup(ctx, &routine.Routine{Name: "support-triage"}, ref); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("lookup: %v", err)
		}
	}
	// Another routine's failure is its own.
	if _, err := r.Lookup(ctx, &routine.Routine{Name: "email-ack"}, ref); err == nil {
		t.Fatal("lookup of email-ack succeeded")
	}
	if _, err := b.Set(ctx, store.DefaultNamespace, "IMAP_PASSWORD", "pw"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, err := r.Lookup(ctx, &routine.Routine{Name: "support-triage"}, ref); err != nil || v != "pw" {
			t.Fatalf("lookup after set: %q %v", v, err)
		}
	}
	run := &routine.Run{ID: "01RUN", Routine: "support-triage"}
	for range 2 {
		if _, err := r.Resolve(ctx, &routine.Routine{Name: run.Routine, Secrets: []routine.SecretRef{{Name: "MISSING"}}}, run); err == nil {
			t.Fatal("resolved MISSING")
		}
	}
	recs, err := st.AuditList(ctx, &store.AuditListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range recs {
		if rec.Action == store.AuditResolve {
			got = append(got, fmt.Sprintf("%s %s %v", rec.Routine, rec.Secret, rec.OK))
		}
	}
	want := []string{"support-triage IMAP_PASSWORD false", "email-ack IMAP_PASSWORD false", "support-triage IMAP_PASSWORD true", "support-triage IMAP_PASSWORD true", "support-triage MISSING false", "support-triage MISSING false"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = slices.Repeat([]string{"support-triage env true"}, 12)
	want = append(want, "email-ack env true", "support-triage builtin false", "support-triage builtin false", "support-triage env true", "support-triage env true")
	if !slices.Equal(observed, want) {
		t.Errorf("observed (routine, provider, not found):\n%s\nwant:\n%s", strings.Join(observed, "\n"), strings.Join(want, "\n"))
	}
}

// No audit record, no value.
func TestResolverFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	_, st, _ := vault(t)
	r, err := secrets.NewResolver(secrets.ResolverConfig{
		Providers: []secrets.Provider{secrets.Env{Lookup: func(string) (string, bool) { return "v", true }}},
		Default:   []string{"env"},
		Audit:     st,
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	values, err := r.Resolve(t.Context(), &routine.Routine{Name: "r", Secrets: []routine.SecretRef{{Name: "A"}}}, &routine.Run{Routine: "r"})
	if err == nil || values != nil || !strings.Contains(err.Error(), "audit") {
		t.Errorf("Resolve with a broken audit log = %v, %v", values, err)
	}
}

// A routine of a namespace resolves only its namespace's secrets, from
// the builtin vault: not another namespace's, not the operators' (the
// default namespace's), not the daemon's environment nor an external
// vault, which hold the deployment's credentials.
func TestResolverNamespaces(t *testing.T) {
	t.Parallel()
	remote := &flaky{}
	r, b, st := resolver(t, map[string]string{"AWS_SECRET_ACCESS_KEY": "operators-env", "TOKEN": "operators-env"}, remote)
	ctx := t.Context()
	for ns, v := range map[string]string{store.DefaultNamespace: "operators", "team-a": "a-value", "team-b": "b-value"} {
		if _, err := b.Set(ctx, ns, "TOKEN", v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Set(ctx, store.DefaultNamespace, "DB_PASSWORD", "operators-db"); err != nil {
		t.Fatal(err)
	}
	run := &routine.Run{ID: "01RUN", Routine: "a-job"}
	resolve := func(ns string, refs ...routine.SecretRef) (map[string]string, error) {
		return r.Resolve(ctx, &routine.Routine{Name: "a-job", Namespace: ns, Secrets: refs}, run)
	}
	for ns, want := range map[string]string{"": "operators", "team-a": "a-value", "team-b": "b-value"} {
		got, err := resolve(ns, routine.SecretRef{Name: "TOKEN"})
		if err != nil || got["TOKEN"] != want {
			t.Errorf("TOKEN of namespace %q = %q, %v; want %q", ns, got["TOKEN"], err, want)
		}
	}
	got, err := resolve("team-a", routine.SecretRef{Name: "MINE", From: "builtin:TOKEN"})
	if err != nil || got["MINE"] != "a-value" {
		t.Errorf("from: builtin:TOKEN in team-a = %q, %v", got["MINE"], err)
	}
	// What team-a must not reach: the operators' secret, the daemon's
	// environment, an external provider.
	for _, ref := range []routine.SecretRef{{Name: "DB_PASSWORD"}, {Name: "AWS_SECRET_ACCESS_KEY"}} {
		got, err := resolve("team-a", ref)
		if !errors.Is(err, secrets.ErrNotFound) || got != nil || !strings.Contains(err.Error(), "is not set in namespace team-a") {
			t.Errorf("%s from team-a = %v, %v; want not set in namespace team-a", ref.Name, got, err)
		}
	}
	for _, ref := range []routine.SecretRef{{Name: "K", From: "env:AWS_SECRET_ACCESS_KEY"}, {Name: "K", From: "flaky:kv/ops"}} {
		got, err := resolve("team-a", ref)
		if err == nil || got != nil || !strings.Contains(err.Error(), "resolves secrets only from its namespace's builtin vault") {
			t.Errorf("%s from team-a = %v, %v; want refused", ref.From, got, err)
		}
	}
	if n := remote.tries.Load(); n != 0 {
		t.Errorf("the external provider was asked %d times for team-a", n)
	}
	// A value copied into another namespace's row does not open there.
	sec, err := st.SecretGet(ctx, "team-a", "TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SecretPut(ctx, &store.SecretPutParams{Namespace: "team-b", Name: "TOKEN", Ciphertext: sec.Ciphertext, Now: sec.RotatedAt}); err != nil {
		t.Fatal(err)
	}
	if got, err := resolve("team-b", routine.SecretRef{Name: "TOKEN"}); err == nil || !strings.Contains(err.Error(), "belongs to another secret") {
		t.Errorf("team-a's ciphertext in team-b's row = %v, %v; want refused", got, err)
	}
	// The audit log names the namespace of each resolution.
	recs, err := st.AuditList(ctx, &store.AuditListParams{Secret: "team-a/TOKEN"})
	if err != nil || len(recs) != 2 || recs[len(recs)-1].Action != store.AuditResolve {
		t.Errorf("audit of team-a/TOKEN: %d records, %v; want its set and its resolution", len(recs), err)
	}
}
