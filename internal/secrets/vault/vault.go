// Package vault resolves secrets from the KV version 2 secrets engine of
// HashiCorp Vault, authenticating with a token or with AppRole.
package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/routines-dev/routines/internal/secrets"
)

const (
	defaultTimeout      = 10 * time.Second
	defaultAppRoleMount = "approle"
)

// Config is how to reach Vault and authenticate to it.
type Config struct {
	// Address is Vault's URL, such as https://vault.example.com:8200; empty
	// means the Vault client's default, https://127.0.0.1:8200.
	Address string
	// Token authenticates every request when set; AppRole is used otherwise.
	Token string
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string
	// RoleID and SecretID are the AppRole credentials.
	RoleID, SecretID string
	// AppRoleMount is the path the AppRole auth method is mounted at.
	AppRoleMount string
	// Timeout bounds each request to Vault.
	Timeout time.Duration
}

// ConfigFromEnv reads the configuration from the environment variables the
// Vault CLI uses (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE) and from
// ROUTINES_VAULT_ROLE_ID, ROUTINES_VAULT_SECRET_ID and
// ROUTINES_VAULT_APPROLE_MOUNT.
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := Config{
		Address:      getenv("VAULT_ADDR"),
		Token:        getenv("VAULT_TOKEN"),
		Namespace:    getenv("VAULT_NAMESPACE"),
		RoleID:       getenv("ROUTINES_VAULT_ROLE_ID"),
		SecretID:     getenv("ROUTINES_VAULT_SECRET_ID"),
		AppRoleMount: getenv("ROUTINES_VAULT_APPROLE_MOUNT"),
	}
	return cfg.withDefaults()
}

// withDefaults fills the settings left at their zero value.
func (c Config) withDefaults() Config {
	if c.AppRoleMount == "" {
		c.AppRoleMount = defaultAppRoleMount
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// Provider resolves "vault:<mount>/data/<path>#<key>" references. It is
// safe for concurrent use.
type Provider struct {
	cfg Config
	// client carries no token of its own: each request is given one, so
	// that an AppRole login never sends a stale token along.
	client  *api.Client
	session session
}

// New returns a Provider for cfg. It does not contact Vault; a missing or
// refused credential is reported by Resolve.
func New(cfg Config) (*Provider, error) {
	cfg = cfg.withDefaults()
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return &Provider{cfg: cfg, client: client, session: session{now: time.Now}}, nil
}

// newClient builds a Vault client that does not retry, carries no token,
// and ignores the address, token and namespace the library itself would
// read from the environment, so that cfg alone decides. TLS settings such
// as VAULT_CACERT are still read by the library. Requests are bounded by
// contexts, not by the library's timeout.
func newClient(cfg Config) (*api.Client, error) {
	apiCfg := api.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, fmt.Errorf("configure client: %w", apiCfg.Error)
	}
	apiCfg.Address = cmp.Or(cfg.Address, api.DefaultAddress)
	apiCfg.AgentAddress = "" // VAULT_AGENT_ADDR would take precedence
	apiCfg.MaxRetries = 0
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("configure client for %q: %w", apiCfg.Address, err)
	}
	client.ClearToken()
	client.ClearNamespace()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return client, nil
}

// Name returns "vault".
func (p *Provider) Name() string { return "vault" }

// Validate checks that ref has the form <mount>/data/<path>#<key>.
func (p *Provider) Validate(ref string) error {
	_, err := parseRef(ref)
	return err
}

// Resolve reads the secret at ref's path and returns its key's value.
func (p *Provider) Resolve(ctx context.Context, ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	value, err := p.resolve(ctx, r)
	if err != nil {
		return "", fmt.Errorf("vault: %s: %w", ref, err)
	}
	return value, nil
}

// resolve reads r's path, logging in again once when Vault refuses an
// AppRole token before its lease says it should (revoked, or Vault lost it).
func (p *Provider) resolve(ctx context.Context, r ref) (string, error) {
	token, err := p.token(ctx)
	if err != nil {
		return "", err
	}
	data, err := p.read(ctx, token, r.apiPath())
	if p.usesAppRole() && isForbidden(err) {
		p.session.forget(token)
		if token, err = p.token(ctx); err != nil {
			return "", err
		}
		data, err = p.read(ctx, token, r.apiPath())
	}
	if err != nil {
		return "", err
	}
	return r.pick(data)
}

// kvResponse is the part of a KV v2 read answer that holds the secret.
type kvResponse struct {
	Data struct {
		Data map[string]json.RawMessage `json:"data"`
	} `json:"data"`
}

// read returns the key/value data stored at the KV v2 API path.
func (p *Provider) read(ctx context.Context, token, path string) (map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	client := p.client.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = token })
	resp, err := client.Logical().ReadRawWithContext(ctx, path)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("no secret at %s: %w", path, secrets.ErrNotFound)
	}
	if err != nil {
		return nil, requestError(err)
	}
	var body kvResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, decodeError(path, err)
	}
	if body.Data.Data == nil {
		// Not what KV v2 answers for a secret, even a deleted one (404).
		return nil, fmt.Errorf("answer for %s has no data.data (is the mount KV version 1?): %w", path, secrets.ErrNotFound)
	}
	return body.Data.Data, nil
}

// decodeError reports an answer that could not be decoded. The decoder's
// own message is left out: it can quote bytes of the answer, which may be
// the secret.
func decodeError(path string, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("answer for %s is not Vault's JSON", path)
	}
	return secrets.Transient(fmt.Errorf("read answer for %s: %w", path, err))
}
