package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/store"
)

// Vault is the builtin vault the API stores secrets in: *secrets.Builtin,
// which encrypts each value and appends the audit record of each change.
// Its secrets are per namespace: a caller reads and changes only its
// namespace's, and another namespace's names are not found.
type Vault interface {
	Set(ctx context.Context, namespace, name, value string) (version int, err error)
	Delete(ctx context.Context, namespace, name string) (existed bool, err error)
	List(ctx context.Context, namespace string) ([]*store.Secret, error)
}

// vault returns the configured vault, or answers 501 without one.
func (s *Server) vault(w http.ResponseWriter) (Vault, bool) {
	if s.cfg.Vault == nil {
		writeError(w, http.StatusNotImplemented, "this daemon keeps no builtin vault: set secrets where it runs")
		return nil, false
	}
	return s.cfg.Vault, true
}

// vaultSecret returns the vault and the secret name in the path, or
// answers 501 without a vault, 400 for a name that cannot be one.
func (s *Server) vaultSecret(w http.ResponseWriter, r *http.Request) (Vault, string, bool) {
	v, ok := s.vault(w)
	if !ok {
		return nil, "", false
	}
	name := r.PathValue("name")
	if err := secrets.CheckName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, "", false
	}
	return v, name, true
}

// listSecrets answers GET /v1/secrets: the names of the caller's
// namespace's secrets, with versions and times, by name; never a value.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	v, ok := s.vault(w)
	if !ok {
		return
	}
	list, err := v.List(r.Context(), callerOf(r).Namespace)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	out := make([]api.Secret, len(list))
	for i, sec := range list {
		out[i] = api.Secret{Name: sec.Name, Version: sec.Version, CreatedAt: sec.CreatedAt, RotatedAt: sec.RotatedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

// setSecret answers PUT /v1/secrets/<name>, body {"value": "…"}: the
// value is stored (a new version of a secret that exists) and never
// written back, logged, or quoted in an error, not even a parse error's
// offending character.
func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) {
	v, name, ok := s.vaultSecret(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		bodyError(w, err)
		return
	}
	var in api.SecretValue
	if json.Unmarshal(body, &in) != nil {
		writeError(w, http.StatusBadRequest, `malformed body: want {"value": "<the secret's value>"}`)
		return
	}
	if err := secrets.CheckValue(in.Value); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("secret %s: %v", name, err))
		return
	}
	ns := callerOf(r).Namespace
	version, err := v.Set(r.Context(), ns, name, in.Value)
	if err != nil {
		s.log.Error("set secret through the API", "secret", name, "namespace", ns, "err", err)
		writeFailure(w, r, fmt.Errorf("secret %s: %w", name, err))
		return
	}
	s.log.Info("secret set through the API", "secret", name, "namespace", ns, "version", version)
	writeJSON(w, http.StatusOK, api.SecretVersion{Name: name, Version: version})
}

// deleteSecret answers DELETE /v1/secrets/<name>: 204, or 404 when the
// caller's namespace stores no such secret.
func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	v, name, ok := s.vaultSecret(w, r)
	if !ok {
		return
	}
	ns := callerOf(r).Namespace
	existed, err := v.Delete(r.Context(), ns, name)
	switch {
	case err != nil:
		writeFailure(w, r, err)
	case !existed:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no secret %s is stored (GET /v1/secrets lists those that are)", name))
	default:
		s.log.Info("secret removed through the API", "secret", name, "namespace", ns)
		w.WriteHeader(http.StatusNoContent)
	}
}
