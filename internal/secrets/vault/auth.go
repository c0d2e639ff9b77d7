package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// session holds the client token an AppRole login returned, in memory
// only, until shortly before its lease ends.
type session struct {
	now func() time.Time

	mu      sync.Mutex // guards token and renewAt
	token   string
	renewAt time.Time // zero when the token does not expire
}

// valid returns the session's token if it is not due for renewal.
func (s *session) valid() (string, bool) {
	if s.token == "" || (!s.renewAt.IsZero() && !s.now().Before(s.renewAt)) {
		return "", false
	}
	return s.token, true
}

// store keeps a token leased for lease. It is renewed after nine tenths
// of the lease, so that a run never starts with a token about to expire.
func (s *session) store(token string, lease time.Duration) {
	s.token = token
	s.renewAt = time.Time{}
	if lease > 0 {
		s.renewAt = s.now().Add(lease - lease/10)
	}
}

// forget drops token after Vault refused it, unless another caller has
// already replaced it.
func (s *session) forget(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// usesAppRole reports whether the provider logs in rather than using a
// configured token.
func (p *Provider) usesAppRole() bool { return p.cfg.Token == "" }

// token returns the token to read with: the configured one, or an AppRole
// token, logging in when there is none or it is due for renewal. Callers
// that need a login meanwhile wait for it rather than log in too.
func (p *Provider) token(ctx context.Context) (string, error) {
	if !p.usesAppRole() {
		return p.cfg.Token, nil
	}
	if p.cfg.RoleID == "" {
		return "", errors.New("no credentials: set VAULT_TOKEN, or ROUTINES_VAULT_ROLE_ID and ROUTINES_VAULT_SECRET_ID for AppRole")
	}
	p.session.mu.Lock()
	defer p.session.mu.Unlock()
	if token, ok := p.session.valid(); ok {
		return token, nil
	}
	token, lease, err := p.login(ctx)
	if err != nil {
		return "", err
	}
	p.session.store(token, lease)
	return token, nil
}

// loginResponse is the part of an AppRole login answer Routines uses.
type loginResponse struct {
	Auth *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int64  `json:"lease_duration"`
	} `json:"auth"`
}

// login exchanges the AppRole role and secret IDs for a client token and
// its lease.
func (p *Provider) login(ctx context.Context) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	path := "auth/" + p.cfg.AppRoleMount + "/login"
	body, err := json.Marshal(map[string]string{"role_id": p.cfg.RoleID, "secret_id": p.cfg.SecretID})
	if err != nil {
		return "", 0, fmt.Errorf("approle login: %w", err)
	}
	resp, err := p.client.Logical().WriteRawWithContext(ctx, path, body)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return "", 0, fmt.Errorf("approle login at %s: %w", path, requestError(err))
	}
	var answer loginResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return "", 0, fmt.Errorf("approle login: %w", decodeError(path, err))
	}
	if answer.Auth == nil || answer.Auth.ClientToken == "" {
		return "", 0, fmt.Errorf("approle login at %s: answer holds no client token", path)
	}
	return answer.Auth.ClientToken, time.Duration(answer.Auth.LeaseDuration) * time.Second, nil
}
