package awssm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/secrets"
)

const (
	accessKeyID     = "AKIDDONOTPRINT"
	secretAccessKey = "secret-access-key-do-not-print"
	dbPassword      = "db-password-do-not-print"
)

// fakeSecretsManager answers GetSecretValue in the AWS JSON 1.1 protocol.
type fakeSecretsManager struct {
	t *testing.T

	mu      sync.Mutex
	secrets map[string]any // id → string (SecretString) or []byte (SecretBinary)
	status  int            // when set, every call answers this status...
	body    string         // ...with this body
	delay   time.Duration
}

func (f *fakeSecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.wellFormed(r) {
		writeAWSError(w, http.StatusBadRequest, "SerializationException", "request is not a signed GetSecretValue")
		return
	}
	var in struct{ SecretId string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.t.Errorf("decode request: %v", err)
		writeAWSError(w, http.StatusBadRequest, "SerializationException", "bad request body")
		return
	}

	f.mu.Lock()
	delay, status, body := f.delay, f.status, f.body
	secret, found := f.secrets[in.SecretId]
	f.mu.Unlock()

	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	switch {
	case status != 0:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case !found:
		writeAWSError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	default:
		answer := map[string]any{
			"ARN":           "arn:aws:secretsmanager:eu-west-1:123456789012:secret:" + in.SecretId + "-AbCdEf",
			"Name":          in.SecretId,
			"VersionId":     "b4a9c8e2-5d6f-4e3a-9b1c-2d3e4f5a6b7c",
			"VersionStages": []string{"AWSCURRENT"},
			"CreatedDate":   1.7645e9,
		}
		switch v := secret.(type) {
		case string:
			answer["SecretString"] = v
		case []byte:
			answer["SecretBinary"] = v // base64, as on the wire
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(answer)
	}
}

// wellFormed checks the request is a SigV4-signed JSON 1.1 GetSecretValue.
func (f *fakeSecretsManager) wellFormed(r *http.Request) bool {
	checks := []struct {
		what string
		ok   bool
	}{
		{"method POST /", r.Method == http.MethodPost && r.URL.Path == "/"},
		{"Content-Type", r.Header.Get("Content-Type") == "application/x-amz-json-1.1"},
		{"X-Amz-Target", r.Header.Get("X-Amz-Target") == "secretsmanager.GetSecretValue"},
		{"Authorization", strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+accessKeyID+"/")},
		{"Authorization scope", strings.Contains(r.Header.Get("Authorization"), "/eu-west-1/secretsmanager/aws4_request")},
		{"X-Amz-Date", r.Header.Get("X-Amz-Date") != ""},
	}
	for _, c := range checks {
		if !c.ok {
			f.t.Errorf("request to fake Secrets Manager: bad %s: %s %s %v", c.what, r.Method, r.URL.Path, r.Header)
			return false
		}
	}
	return true
}

func writeAWSError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": message})
}

// update changes the fake under its lock.
func (f *fakeSecretsManager) update(change func(f *fakeSecretsManager)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// isolateEnv gives the SDK static credentials through the environment and
// empty shared files, so that neither the developer's AWS configuration
// nor the instance metadata service is ever used.
func isolateEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":                      accessKeyID,
		"AWS_SECRET_ACCESS_KEY":                  secretAccessKey,
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_REGION":                             "",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":       "",
		"AWS_ROLE_ARN":                           "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// setup starts a fake Secrets Manager on loopback holding prod/db (a JSON
// object), prod/api-key (a plain string) and prod/cert (binary), and
// returns a provider for it. The tests that call it cannot run in
// parallel: the SDK reads its credentials from the process environment.
func setup(t *testing.T, timeout time.Duration) (*Provider, *fakeSecretsManager) {
	t.Helper()
	isolateEnv(t)
	f := &fakeSecretsManager{t: t, secrets: map[string]any{
		"prod/db":      `{"username":"app","password":"` + dbPassword + `","port":5432}`,
		"prod/api-key": "api-key-do-not-print",
		"prod/cert":    []byte("binary-do-not-print"),
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p, err := New(Config{Region: "eu-west-1", Endpoint: srv.URL, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, f
}

func TestResolve(t *testing.T) {
	p, _ := setup(t, 0)
	tests := []struct{ ref, want string }{
		{"prod/db#password", dbPassword},
		{"prod/db", `{"username":"app","password":"` + dbPassword + `","port":5432}`},
		{"prod/api-key", "api-key-do-not-print"},
		{"prod/cert", "binary-do-not-print"},
	}
	for _, tt := range tests {
		got, err := p.Resolve(context.Background(), tt.ref)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
		} else if got != tt.want {
			t.Errorf("Resolve(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestResolveRotation(t *testing.T) {
	p, f := setup(t, 0)
	if got, err := p.Resolve(context.Background(), "prod/api-key"); err != nil || got != "api-key-do-not-print" {
		t.Fatalf("first Resolve = %q, %v", got, err)
	}
	f.update(func(f *fakeSecretsManager) { f.secrets["prod/api-key"] = "rotated" })
	if got, err := p.Resolve(context.Background(), "prod/api-key"); err != nil || got != "rotated" {
		t.Errorf("Resolve after rotation = %q, %v; want %q", got, err, "rotated")
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name          string
		timeout       time.Duration
		change        func(f *fakeSecretsManager)
		ref           string
		want          string
		wantNotFound  bool
		wantTransient bool
	}{
		{
			name:         "no such secret",
			ref:          "prod/nothing",
			want:         "aws: prod/nothing: ResourceNotFoundException: Secrets Manager can't find the specified secret. (400): secret not found",
			wantNotFound: true,
		},
		{
			name:         "no such key",
			ref:          "prod/db#pasword",
			want:         `aws: prod/db#pasword: no key "pasword" in secret prod/db (keys: password, port, username): secret not found`,
			wantNotFound: true,
		},
		{
			name: "key holds a number",
			ref:  "prod/db#port",
			want: `aws: prod/db#port: key "port" in secret prod/db holds a JSON number, not a string`,
		},
		{
			name: "key of a secret that is not JSON",
			ref:  "prod/api-key#token",
			want: "aws: prod/api-key#token: secret prod/api-key is not a JSON object, so #token selects nothing; drop #token to use the whole value",
		},
		{
			name: "access denied 400",
			change: func(f *fakeSecretsManager) {
				f.status, f.body = 400, `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: secretsmanager:GetSecretValue"}`
			},
			ref:  "prod/db#password",
			want: "aws: prod/db#password: AccessDeniedException: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: secretsmanager:GetSecretValue (400)",
		},
		{
			name: "access denied 403",
			change: func(f *fakeSecretsManager) {
				f.status, f.body = 403, `{"__type":"AccessDeniedException","message":"Access denied"}`
			},
			ref:  "prod/db#password",
			want: "aws: prod/db#password: AccessDeniedException: Access denied (403)",
		},
		{
			name: "internal service error",
			change: func(f *fakeSecretsManager) {
				f.status, f.body = 500, `{"__type":"InternalServiceError","message":"An error occurred on the server side."}`
			},
			ref:           "prod/db#password",
			want:          "aws: prod/db#password: InternalServiceError: An error occurred on the server side. (500)",
			wantTransient: true,
		},
		{
			name:          "503 from a proxy echoing the body",
			change:        func(f *fakeSecretsManager) { f.status, f.body = 503, "<html>upstream sent "+dbPassword+"</html>" },
			ref:           "prod/db#password",
			want:          "aws: prod/db#password: service unavailable (503)",
			wantTransient: true,
		},
		{
			name:          "429 from a proxy",
			change:        func(f *fakeSecretsManager) { f.status, f.body = 429, "slow down" },
			ref:           "prod/db#password",
			want:          "aws: prod/db#password: too many requests (429)",
			wantTransient: true,
		},
		{
			name: "throttled",
			change: func(f *fakeSecretsManager) {
				f.status, f.body = 400, `{"__type":"ThrottlingException","message":"Rate exceeded"}`
			},
			ref:           "prod/db#password",
			want:          "aws: prod/db#password: ThrottlingException: Rate exceeded (400)",
			wantTransient: true,
		},
		{
			name:          "timeout",
			timeout:       200 * time.Millisecond,
			change:        func(f *fakeSecretsManager) { f.delay = 5 * time.Second },
			ref:           "prod/db#password",
			want:          "context deadline exceeded",
			wantTransient: true,
		},
		{
			name:   "malformed JSON",
			change: func(f *fakeSecretsManager) { f.status, f.body = 200, `{"Name":"prod/db","SecretString":"`+dbPassword },
			ref:    "prod/db#password",
			want:   "aws: prod/db#password: answer is not Secrets Manager's JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f := setup(t, tt.timeout)
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
	isolateEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p, err := New(Config{Region: "eu-west-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = p.Resolve(context.Background(), "prod/db#password")
	assertError(t, err, "prod/db#password", "connection refused")
	if !secrets.IsTransient(err) {
		t.Errorf("IsTransient = false, want true")
	}
}

func TestResolveNoRegion(t *testing.T) {
	isolateEnv(t)
	p, err := New(Config{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = p.Resolve(context.Background(), "prod/db#password")
	assertError(t, err, "prod/db#password", "no region: set ROUTINES_AWS_REGION or AWS_REGION")
}

// assertError checks that err names the provider and the reference, holds
// want, and shows no secret value or credential.
func assertError(t *testing.T, err error, ref, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %q", want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "aws: "+ref+": ") {
		t.Errorf("error %q does not start with %q", msg, "aws: "+ref+": ")
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
	if strings.Contains(msg, "DONOTPRINT") || strings.Contains(msg, "do-not-print") {
		t.Errorf("error %q shows a secret value or credential", msg)
	}
}

func TestNewRejectsEndpoint(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Endpoint: "localhost:4566"}); err == nil {
		t.Error("New accepted an endpoint without a scheme")
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want Config
	}{
		{
			env:  map[string]string{"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://a"},
			want: Config{Region: "us-east-1", Endpoint: "http://a", Timeout: 10 * time.Second},
		},
		{
			env: map[string]string{
				"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "eu-west-1",
				"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://b",
			},
			want: Config{Region: "eu-west-1", Endpoint: "http://b", Timeout: 10 * time.Second},
		},
		{
			env: map[string]string{
				"AWS_REGION": "eu-west-1", "ROUTINES_AWS_REGION": "eu-central-1",
				"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://b", "ROUTINES_AWS_ENDPOINT": "http://127.0.0.1:4566",
			},
			want: Config{Region: "eu-central-1", Endpoint: "http://127.0.0.1:4566", Timeout: 10 * time.Second},
		},
	}
	for _, tt := range tests {
		if got := ConfigFromEnv(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("ConfigFromEnv(%v) = %+v, want %+v", tt.env, got, tt.want)
		}
	}
}
