package secrets

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// MaxValueBytes bounds a secret's value.
const MaxValueBytes = 64 << 10

// namePattern is what a secret's name looks like.
var namePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// CheckName returns an error saying what a valid name looks like when name
// is not one.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("a secret needs a name, such as SLACK_TOKEN")
	case !namePattern.MatchString(name):
		return fmt.Errorf("secret name %q must be upper-case letters, digits and _, starting with a letter, such as SLACK_TOKEN", name)
	}
	return nil
}

// CheckValue refuses values the vault does not keep: empty, over 64 KiB,
// or not UTF-8.
func CheckValue(value string) error {
	switch {
	case value == "":
		return errors.New("the value is empty")
	case len(value) > MaxValueBytes:
		return fmt.Errorf("the value is %d bytes; a secret holds at most %d (64 KiB)", len(value), MaxValueBytes)
	case !utf8.ValidString(value):
		return errors.New("the value is not UTF-8 text: encode binary secrets, for example with base64")
	}
	return nil
}

// VaultStore is the part of store.Store the builtin vault uses.
type VaultStore interface {
	VaultKeyInit(ctx context.Context, wrapped []byte, now time.Time) ([]byte, error)
	VaultKeyGet(ctx context.Context) ([]byte, error)
	SecretPut(ctx context.Context, p *store.SecretPutParams) (int, error)
	SecretGet(ctx context.Context, namespace, name string) (*store.Secret, error)
	SecretList(ctx context.Context, namespace string) ([]*store.Secret, error)
	SecretDelete(ctx context.Context, namespace, name string) (bool, error)
	AuditAppend(ctx context.Context, records []*store.AuditRecord) error
}

// Builtin is the builtin provider: values kept in the store, sealed under
// the vault's data key, which the store keeps encrypted with age under the
// master key (envelope encryption: a value opens in microseconds, and only
// the data key needs the master key). Its references are secret names;
// each namespace has its own (a deployment's teams, docs/teams.md).
type Builtin struct {
	store VaultStore
	keys  KeySource
	now   func() time.Time

	mu  sync.Mutex
	key *dataKey // unwrapped at first use
}

// NewBuiltin returns the builtin vault on st, with the master key from keys.
// The key is read at first use, not here.
func NewBuiltin(st VaultStore, keys KeySource) *Builtin {
	return &Builtin{store: st, keys: keys, now: time.Now}
}

// Name implements Provider.
func (*Builtin) Name() string { return "builtin" }

// Validate implements Provider: a reference is a secret name.
func (*Builtin) Validate(ref string) error { return CheckName(ref) }

// dataKey returns the vault's data key, unwrapping it with the master key
// at first use. With create, a vault without one gets one (and the master
// key file is made when there is none).
func (b *Builtin) dataKey(ctx context.Context, create bool) (*dataKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.key != nil {
		return b.key, nil
	}
	master, err := loadMasterKey(b.keys, create)
	if err != nil {
		return nil, err
	}
	wrapped, err := b.store.VaultKeyGet(ctx)
	if errors.Is(err, routine.ErrNotFound) && create {
		wrapped, err = b.newDataKey(ctx, master)
	}
	if errors.Is(err, routine.ErrNotFound) {
		return nil, errors.New("the vault has no data key: its store lost it; set the secrets again")
	}
	if err != nil {
		return nil, err
	}
	if b.key, err = master.unwrap(wrapped); err != nil {
		return nil, err
	}
	return b.key, nil
}

// newDataKey makes a data key, wraps it, and stores it unless another
// process stored one first; it returns the stored one.
func (b *Builtin) newDataKey(ctx context.Context, master *masterKey) ([]byte, error) {
	raw := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	wrapped, err := master.wrap(raw)
	if err != nil {
		return nil, fmt.Errorf("wrap the vault's data key: %w", err)
	}
	return b.store.VaultKeyInit(ctx, wrapped, b.now())
}

// Resolve implements Provider: the secret name of the default namespace,
// the one of a local daemon and of a deployment's operators.
func (b *Builtin) Resolve(ctx context.Context, name string) (string, error) {
	return b.ResolveIn(ctx, store.DefaultNamespace, name)
}

// ResolveIn implements NamespacedProvider: the secret name of namespace.
func (b *Builtin) ResolveIn(ctx context.Context, namespace, name string) (string, error) {
	namespace = cmp.Or(namespace, store.DefaultNamespace)
	qualified := Qualified(namespace, name)
	sec, err := b.store.SecretGet(ctx, namespace, name)
	if errors.Is(err, routine.ErrNotFound) {
		return "", fmt.Errorf("builtin: %s: %w", qualified, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("builtin: %s: %w", qualified, err)
	}
	key, err := b.dataKey(ctx, false)
	if err != nil {
		return "", fmt.Errorf("builtin: %s: %w", qualified, err)
	}
	value, err := key.open(qualified, sec.Ciphertext)
	if err != nil {
		return "", fmt.Errorf("builtin: %s: %w", qualified, err)
	}
	return value, nil
}

// Qualified is how the vault names the secret name of namespace in its
// audit records and errors, and what its values are sealed with: the name
// alone in the default namespace (as before namespaces), else
// "namespace/NAME". A ciphertext copied to another namespace or name does
// not open.
func Qualified(namespace, name string) string {
	if namespace == "" || namespace == store.DefaultNamespace {
		return name
	}
	return namespace + "/" + name
}

// Set stores a new value of the secret name of namespace and returns its
// version. The master key file is created when there is none.
func (b *Builtin) Set(ctx context.Context, namespace, name, value string) (int, error) {
	namespace = cmp.Or(namespace, store.DefaultNamespace)
	if err := CheckName(name); err != nil {
		return 0, err
	}
	qualified := Qualified(namespace, name)
	if err := CheckValue(value); err != nil {
		return 0, fmt.Errorf("secret %s: %w", qualified, err)
	}
	key, err := b.dataKey(ctx, true)
	if err != nil {
		return 0, err
	}
	ciphertext, err := key.seal(qualified, value)
	if err != nil {
		return 0, fmt.Errorf("secret %s: encrypt: %w", qualified, err)
	}
	now := b.now()
	version, err := b.store.SecretPut(ctx, &store.SecretPutParams{Namespace: namespace, Name: name, Ciphertext: ciphertext, Now: now})
	if err != nil {
		return 0, err
	}
	return version, b.audit(ctx, store.AuditSet, qualified, now)
}

// Delete removes the secret name of namespace and reports whether it was
// there.
func (b *Builtin) Delete(ctx context.Context, namespace, name string) (bool, error) {
	namespace = cmp.Or(namespace, store.DefaultNamespace)
	if err := CheckName(name); err != nil {
		return false, err
	}
	existed, err := b.store.SecretDelete(ctx, namespace, name)
	if err != nil || !existed {
		return existed, err
	}
	return true, b.audit(ctx, store.AuditDelete, Qualified(namespace, name), b.now())
}

// List returns the secrets of namespace: names, versions and times, no
// values. Here and in the other methods, namespace "" is the default one.
func (b *Builtin) List(ctx context.Context, namespace string) ([]*store.Secret, error) {
	namespace = cmp.Or(namespace, store.DefaultNamespace)
	return b.store.SecretList(ctx, namespace)
}

func (b *Builtin) audit(ctx context.Context, action, name string, now time.Time) error {
	return b.store.AuditAppend(ctx, []*store.AuditRecord{{Time: now, Action: action, Secret: name, Provider: b.Name(), OK: true}})
}

// Env is the env provider: a reference is the name of an environment
// variable of the process that runs the routine (the daemon).
type Env struct {
	// Lookup reads a variable; os.LookupEnv in production.
	Lookup func(string) (string, bool)
}

// Name implements Provider.
func (Env) Name() string { return "env" }

// Validate implements Provider.
func (Env) Validate(ref string) error {
	if !envPattern.MatchString(ref) {
		return fmt.Errorf("env reference %q must be the name of an environment variable, such as SLACK_TOKEN", ref)
	}
	return nil
}

var envPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Resolve implements Provider.
func (e Env) Resolve(_ context.Context, ref string) (string, error) {
	v, ok := e.Lookup(ref)
	if !ok {
		return "", fmt.Errorf("env: %s is not set in the environment: %w", ref, ErrNotFound)
	}
	return v, nil
}
