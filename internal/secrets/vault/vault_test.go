package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/secrets"
)

const (
	rootToken = "s.root-token-do-not-print"
	roleID    = "role-id-do-not-print"
	secretID  = "secret-id-do-not-print"
	botToken  = "xoxb-bot-token-do-not-print"
)

// fakeVault answers the two Vault endpoints the provider uses, with Vault's
// JSON shapes.
type fakeVault struct {
	mu       sync.Mutex
	data     map[string]map[string]any // KV v2 API path → secret data
	tokens   map[string]bool           // tokens Vault accepts
	lease    int                       // lease_duration of AppRole tokens, in seconds
	logins   int
	status   int    // when set, every read answers this status...
	body     string // ...with this body
	delay    time.Duration
	lastSeen string // the token of the last read

	loginBody string // when set, every login answers 200 with this body
}

func (f *fakeVault) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/approle/login", f.login)
	// The Vault client sends logins as PUT, which Vault treats as POST.
	mux.HandleFunc("PUT /v1/auth/approle/login", f.login)
	mux.HandleFunc("GET /v1/{mount}/data/{path...}", f.read)
	return mux
}

func (f *fakeVault) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RoleID != roleID || body.SecretID != secretID {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []string{"invalid role or secret ID"}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loginBody != "" {
		_, _ = w.Write([]byte(f.loginBody))
		return
	}
	f.logins++
	token := fmt.Sprintf("s.approle-%d-do-not-print", f.logins)
	f.tokens[token] = true
	writeJSON(w, http.StatusOK, map[string]any{
		"auth": map[string]any{"client_token": token, "lease_duration": f.lease, "renewable": true},
	})
}

func (f *fakeVault) read(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay, status, body := f.delay, f.status, f.body
	token := r.Header.Get("X-Vault-Token")
	f.lastSeen = token
	accepted := f.tokens[token]
	data, found := f.data[r.PathValue("mount")+"/data/"+r.PathValue("path")]
	f.mu.Unlock()

	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	switch {
	case status != 0:
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case !accepted:
		writeJSON(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
	case !found:
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{
			"request_id": "8af09e6a-0d35-4b9b-a5b5-7d9a0b0c6d11",
			"data": map[string]any{
				"data":     data,
				"metadata": map[string]any{"version": 3, "created_time": "2026-11-25T10:00:00Z", "deletion_time": "", "destroyed": false},
			},
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// set stores a secret's data, as "vault kv put" would.
func (f *fakeVault) set(path string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[path] = data
}

// update changes the fake under its lock.
func (f *fakeVault) update(change func(f *fakeVault)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeVault) lastToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSeen
}

func (f *fakeVault) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins
}

// setup starts a fake Vault on loopback holding kv/data/slack, and returns
// a provider for it configured by cfg (Address is filled in).
func setup(t *testing.T, cfg Config) (*Provider, *fakeVault) {
	t.Helper()
	f := &fakeVault{
		data:   map[string]map[string]any{"kv/data/slack": {"bot_token": botToken, "retries": 3}},
		tokens: map[string]bool{rootToken: true},
		lease:  3600,
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	cfg.Address = srv.URL
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, f
}

func tokenConfig() Config { return Config{Token: rootToken} }

func appRoleConfig() Config { return Config{RoleID: roleID, SecretID: secretID} }

func resolve(t *testing.T, p *Provider, ref string) string {
	t.Helper()
	got, err := p.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	return got
}

func TestResolveWithToken(t *testing.T) {
	t.Parallel()
	p, f := setup(t, tokenConfig())
	if got := resolve(t, p, "kv/data/slack#bot_token"); got != botToken {
		t.Errorf("Resolve = %q, want %q", got, botToken)
	}
	if got := f.lastToken(); got != rootToken {
		t.Errorf("X-Vault-Token = %q, want the configured token", got)
	}
}

func TestResolveNestedPath(t *testing.T) {
	t.Parallel()
	p, f := setup(t, tokenConfig())
	f.set("secret/data/team/ci", map[string]any{"token": "ci-token"})
	if got := resolve(t, p, "secret/data/team/ci#token"); got != "ci-token" {
		t.Errorf("Resolve = %q, want %q", got, "ci-token")
	}
}

func TestResolveRotation(t *testing.T) {
	t.Parallel()
	p, f := setup(t, tokenConfig())
	if got := resolve(t, p, "kv/data/slack#bot_token"); got != botToken {
		t.Fatalf("first Resolve = %q, want %q", got, botToken)
	}
	f.set("kv/data/slack", map[string]any{"bot_token": "rotated"})
	if got := resolve(t, p, "kv/data/slack#bot_token"); got != "rotated" {
		t.Errorf("Resolve after rotation = %q, want %q", got, "rotated")
	}
}

func TestResolveAppRole(t *testing.T) {
	t.Parallel()
	p, f := setup(t, appRoleConfig())
	for range 3 {
		if got := resolve(t, p, "kv/data/slack#bot_token"); got != botToken {
			t.Fatalf("Resolve = %q, want %q", got, botToken)
		}
	}
	if n := f.loginCount(); n != 1 {
		t.Errorf("logins = %d, want 1: the token is kept across Resolve calls", n)
	}
	if got := f.lastToken(); got != "s.approle-1-do-not-print" {
		t.Errorf("X-Vault-Token = %q, want the AppRole token", got)
	}
}

func TestResolveAppRoleConcurrently(t *testing.T) {
	t.Parallel()
	p, f := setup(t, appRoleConfig())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := p.Resolve(context.Background(), "kv/data/slack#bot_token"); err != nil || got != botToken {
				t.Errorf("Resolve = %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := f.loginCount(); n != 1 {
		t.Errorf("logins = %d, want 1", n)
	}
}

func TestResolveAppRoleLogsInAgainOn403(t *testing.T) {
	t.Parallel()
	p, f := setup(t, appRoleConfig())
	resolve(t, p, "kv/data/slack#bot_token")
	f.update(func(f *fakeVault) { clear(f.tokens) }) // revoked
	if got := resolve(t, p, "kv/data/slack#bot_token"); got != botToken {
		t.Errorf("Resolve = %q, want %q", got, botToken)
	}
	if n := f.loginCount(); n != 2 {
		t.Errorf("logins = %d, want 2", n)
	}
}

func TestResolveAppRoleLogsInAgainBeforeLeaseEnds(t *testing.T) {
	t.Parallel()
	p, f := setup(t, appRoleConfig())
	f.update(func(f *fakeVault) { f.lease = 100 })
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p.session.now = func() time.Time { return now }

	resolve(t, p, "kv/data/slack#bot_token")
	now = now.Add(80 * time.Second)
	resolve(t, p, "kv/data/slack#bot_token")
	if n := f.loginCount(); n != 1 {
		t.Fatalf("logins after 80s of a 100s lease = %d, want 1", n)
	}
	now = now.Add(15 * time.Second)
	resolve(t, p, "kv/data/slack#bot_token")
	if n := f.loginCount(); n != 2 {
		t.Errorf("logins after 95s of a 100s lease = %d, want 2", n)
	}
}

func TestResolveAppRoleStillRefusedAfterLogin(t *testing.T) {
	t.Parallel()
	p, f := setup(t, appRoleConfig())
	f.update(func(f *fakeVault) {
		f.status, f.body = http.StatusForbidden, `{"errors":["permission denied"]}`
	})
	_, err := p.Resolve(context.Background(), "kv/data/slack#bot_token")
	if err == nil || !strings.Contains(err.Error(), "permission denied (403)") {
		t.Fatalf("Resolve error = %v, want permission denied (403)", err)
	}
	if n := f.loginCount(); n != 2 {
		t.Errorf("logins = %d, want 2: one, then one more after the 403", n)
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		cfg           Config
		change        func(f *fakeVault)
		ref           string
		want          string
		wantNotFound  bool
		wantTransient bool
	}{
		{
			name: "token refused",
			cfg:  Config{Token: "s.wrong-token-do-not-print"},
			ref:  "kv/data/slack#bot_token",
			want: "vault: kv/data/slack#bot_token: permission denied (403)",
		},
		{
			name:         "no secret at path",
			cfg:          tokenConfig(),
			ref:          "kv/data/nothing#bot_token",
			want:         "vault: kv/data/nothing#bot_token: no secret at kv/data/nothing: secret not found",
			wantNotFound: true,
		},
		{
			name:         "no such key",
			cfg:          tokenConfig(),
			ref:          "kv/data/slack#bot_tokn",
			want:         `vault: kv/data/slack#bot_tokn: no key "bot_tokn" in kv/data/slack (keys: bot_token, retries): secret not found`,
			wantNotFound: true,
		},
		{
			name: "value not a string",
			cfg:  tokenConfig(),
			ref:  "kv/data/slack#retries",
			want: `vault: kv/data/slack#retries: key "retries" in kv/data/slack holds a JSON number, not a string`,
		},
		{
			name:          "500",
			cfg:           tokenConfig(),
			change:        func(f *fakeVault) { f.status, f.body = 500, `{"errors":["internal error"]}` },
			ref:           "kv/data/slack#bot_token",
			want:          "vault: kv/data/slack#bot_token: internal error (500)",
			wantTransient: true,
		},
		{
			name:          "503 sealed",
			cfg:           tokenConfig(),
			change:        func(f *fakeVault) { f.status, f.body = 503, `{"errors":["Vault is sealed"]}` },
			ref:           "kv/data/slack#bot_token",
			want:          "vault: kv/data/slack#bot_token: Vault is sealed (503)",
			wantTransient: true,
		},
		{
			name: "429",
			cfg:  tokenConfig(),
			change: func(f *fakeVault) {
				f.status, f.body = 429, `{"errors":["request path \"kv/data/slack\": rate limit quota exceeded"]}`
			},
			ref:           "kv/data/slack#bot_token",
			want:          "rate limit quota exceeded (429)",
			wantTransient: true,
		},
		{
			name:          "502 from a proxy echoing the body",
			cfg:           tokenConfig(),
			change:        func(f *fakeVault) { f.status, f.body = 502, "<html>upstream sent "+botToken+"</html>" },
			ref:           "kv/data/slack#bot_token",
			want:          "vault: kv/data/slack#bot_token: bad gateway (502)",
			wantTransient: true,
		},
		{
			name:          "timeout",
			cfg:           Config{Token: rootToken, Timeout: 200 * time.Millisecond},
			change:        func(f *fakeVault) { f.delay = 5 * time.Second },
			ref:           "kv/data/slack#bot_token",
			want:          "context deadline exceeded",
			wantTransient: true,
		},
		{
			name:   "malformed JSON",
			cfg:    tokenConfig(),
			change: func(f *fakeVault) { f.status, f.body = 200, `{"data":{"data":{"bot_token":"`+botToken },
			ref:    "kv/data/slack#bot_token",
			want:   "vault: kv/data/slack#bot_token: answer for kv/data/slack is not Vault's JSON",
		},
		{
			name:   "not JSON at all",
			cfg:    tokenConfig(),
			change: func(f *fakeVault) { f.status, f.body = 200, botToken },
			ref:    "kv/data/slack#bot_token",
			want:   "is not Vault's JSON",
		},
		{
			name: "deleted version",
			cfg:  tokenConfig(),
			change: func(f *fakeVault) {
				f.status, f.body = 404, `{"data":{"data":null,"metadata":{"deletion_time":"2026-11-25T10:00:00Z","version":4}}}`
			},
			ref:          "kv/data/slack#bot_token",
			wantNotFound: true,
		},
		{
			name:         "KV version 1 answer",
			cfg:          tokenConfig(),
			change:       func(f *fakeVault) { f.status, f.body = 200, `{"data":{"bot_token":"`+botToken+`"}}` },
			ref:          "kv/data/slack#bot_token",
			want:         "vault: kv/data/slack#bot_token: answer for kv/data/slack has no data.data (is the mount KV version 1?): secret not found",
			wantNotFound: true,
		},
		{
			name:   "login answer not JSON",
			cfg:    appRoleConfig(),
			change: func(f *fakeVault) { f.loginBody = `{"auth":{"client_token":"s.half-token-do-not-print` },
			ref:    "kv/data/slack#bot_token",
			want:   "vault: kv/data/slack#bot_token: approle login: answer for auth/approle/login is not Vault's JSON",
		},
		{
			name: "approle login refused",
			cfg:  Config{RoleID: roleID, SecretID: "wrong-secret-id-do-not-print"},
			ref:  "kv/data/slack#bot_token",
			want: "vault: kv/data/slack#bot_token: approle login at auth/approle/login: invalid role or secret ID (400)",
		},
		{
			name: "no credentials",
			cfg:  Config{},
			ref:  "kv/data/slack#bot_token",
			want: "vault: kv/data/slack#bot_token: no credentials: set VAULT_TOKEN, or ROUTINES_VAULT_ROLE_ID and ROUTINES_VAULT_SECRET_ID for AppRole",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, f := setup(t, tt.cfg)
			if tt.change != nil {
				f.update(tt.change)
			}
			got, err := p.Resolve(context.Background(), tt.ref)
			if err == nil {
				t.Fatalf("Resolve = %q, want an error", got)
			}
			assertError(t, err, tt.ref, tt.want)
			if errors.Is(err, secrets.ErrNotFound) != tt.wantNotFound {
				t.Errorf("errors.Is(ErrNotFound) = %v, want %v", !tt.wantNotFound, tt.wantNotFound)
			}
			if secrets.IsTransient(err) != tt.wantTransient {
				t.Errorf("IsTransient = %v, want %v", !tt.wantTransient, tt.wantTransient)
			}
		})
	}
}

func TestResolveConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p, err := New(Config{Address: srv.URL, Token: rootToken})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = p.Resolve(context.Background(), "kv/data/slack#bot_token")
	assertError(t, err, "kv/data/slack#bot_token", "connection refused")
	if !secrets.IsTransient(err) {
		t.Errorf("IsTransient = false, want true")
	}
}

// assertError checks that err names the provider and the reference, holds
// want, and shows no secret value or credential.
func assertError(t *testing.T, err error, ref, want string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "vault: "+ref+": ") {
		t.Errorf("error %q does not start with %q", msg, "vault: "+ref+": ")
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
	if strings.Contains(msg, "do-not-print") {
		t.Errorf("error %q shows a secret value or credential", msg)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"VAULT_ADDR":               "https://vault.example.com:8200",
		"VAULT_TOKEN":              "t",
		"VAULT_NAMESPACE":          "team",
		"ROUTINES_VAULT_ROLE_ID":   "r",
		"ROUTINES_VAULT_SECRET_ID": "s",
	}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{
		Address: "https://vault.example.com:8200", Token: "t", Namespace: "team",
		RoleID: "r", SecretID: "s", AppRoleMount: "approle", Timeout: 10 * time.Second,
	}
	if got != want {
		t.Errorf("ConfigFromEnv = %+v, want %+v", got, want)
	}
}
