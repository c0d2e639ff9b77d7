// Package secrets resolves the secrets a routine declares: providers behind
// one interface (the builtin age-encrypted vault in the store, the
// environment, HashiCorp Vault, AWS Secrets Manager), resolution at the
// start of every run with an audit record per secret, and the redaction of
// resolved values from everything a run leaves behind.
package secrets

import (
	"context"
	"errors"
)

// Provider is one source of secret values. A routine names it in a
// secret's from: as "<name>:<ref>", such as "vault:kv/data/slack#bot_token".
type Provider interface {
	// Name is the provider's prefix in from: ("vault").
	Name() string
	// Validate checks the syntax of a reference when a routine is loaded,
	// without the network.
	Validate(ref string) error
	// Resolve returns the current value of ref. It is called at the start
	// of every run, and nothing it returns is cached across runs. Errors
	// name the provider and the reference, never a value; a missing secret
	// wraps ErrNotFound, and a failure worth trying again (a timeout, a
	// refused connection, a 5xx or 429 answer) is marked with Transient.
	Resolve(ctx context.Context, ref string) (string, error)
}

// NamespacedProvider is a provider that keeps secrets per namespace of a
// deployment (the builtin vault). A routine of a namespace other than the
// default one resolves its secrets only through such a provider, in its
// namespace: the others (the environment, Vault, AWS) hold the
// deployment's credentials, which are its operators'.
type NamespacedProvider interface {
	Provider
	// ResolveIn resolves ref in namespace, as Resolve does in the default
	// one.
	ResolveIn(ctx context.Context, namespace, ref string) (string, error)
}

// ErrNotFound is wrapped by the errors of providers that do not have a
// secret.
var ErrNotFound = errors.New("secret not found")

// transientError marks an error worth trying again.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient marks err as worth trying again; nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsTransient reports whether err, or an error it wraps, was marked with
// Transient.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}
