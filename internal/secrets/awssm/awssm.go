// Package awssm resolves secrets from AWS Secrets Manager, with credentials
// from the AWS SDK's default chain.
package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

const defaultTimeout = 10 * time.Second

// Config is where to reach Secrets Manager. Credentials are not part of it:
// they come from the SDK's default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, the shared files and AWS_PROFILE, web identity,
// the ECS or EC2 instance role).
type Config struct {
	// Region is the AWS region, such as eu-west-1; empty leaves it to the
	// SDK, which reads AWS_REGION and the shared config file.
	Region string
	// Endpoint replaces the Secrets Manager endpoint, such as
	// http://127.0.0.1:4566 for LocalStack; empty for AWS's own.
	Endpoint string
	// Timeout bounds each secret's resolution, credential lookup included.
	Timeout time.Duration
}

// ConfigFromEnv reads the configuration from ROUTINES_AWS_REGION (or
// AWS_REGION, or AWS_DEFAULT_REGION) and ROUTINES_AWS_ENDPOINT (or
// AWS_ENDPOINT_URL_SECRETS_MANAGER, or AWS_ENDPOINT_URL).
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := Config{
		Region:   firstSet(getenv, "ROUTINES_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
		Endpoint: firstSet(getenv, "ROUTINES_AWS_ENDPOINT", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"),
	}
	return cfg.withDefaults()
}

// firstSet returns the value of the first of names that is set.
func firstSet(getenv func(string) string, names ...string) string {
	for _, name := range names {
		if v := getenv(name); v != "" {
			return v
		}
	}
	return ""
}

// withDefaults fills the settings left at their zero value.
func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// Provider resolves "aws:<secret-id>[#<json-key>]" references. It is safe
// for concurrent use.
type Provider struct {
	cfg Config

	mu     sync.Mutex // guards client
	client *secretsmanager.Client
}

// New returns a Provider for cfg. It neither contacts AWS nor reads the
// SDK's configuration, so that a deployment that never uses AWS is not
// troubled by it; the first Resolve does.
func New(cfg Config) (*Provider, error) {
	if cfg.Endpoint != "" {
		if u, err := url.Parse(cfg.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("aws: endpoint %q is not a URL such as http://127.0.0.1:4566", cfg.Endpoint)
		}
	}
	return &Provider{cfg: cfg.withDefaults()}, nil
}

// Name returns "aws".
func (p *Provider) Name() string { return "aws" }

// Validate checks that ref has the form <secret-id>[#<json-key>].
func (p *Provider) Validate(ref string) error {
	_, err := parseRef(ref)
	return err
}

// Resolve returns the current value of the secret ref names, or of one key
// of it when the secret is a JSON object.
func (p *Provider) Resolve(ctx context.Context, ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	value, err := p.resolve(ctx, r)
	if err != nil {
		return "", fmt.Errorf("aws: %s: %w", ref, err)
	}
	return value, nil
}

// resolve fetches r's secret and picks its key.
func (p *Provider) resolve(ctx context.Context, r ref) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	client, err := p.secretsManager(ctx)
	if err != nil {
		return "", err
	}
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.id)})
	if err != nil {
		return "", callError(err)
	}
	value, err := secretValue(out)
	if err != nil || r.key == "" {
		return value, err
	}
	return r.pick(value)
}

// secretsManager returns the client, loading the SDK's configuration on
// first use. A failed load is not kept, so that fixing the configuration
// needs no restart.
func (p *Provider) secretsManager(ctx context.Context) (*secretsmanager.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	opts := []func(*config.LoadOptions) error{
		// Routines retries transient failures itself, with its own backoff.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if p.cfg.Region != "" {
		opts = append(opts, config.WithRegion(p.cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("no region: set ROUTINES_AWS_REGION or AWS_REGION, such as eu-west-1")
	}
	p.client = secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
		if p.cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.Endpoint)
		}
	})
	return p.client, nil
}

// secretValue returns a secret's string, or its binary value as a string.
func secretValue(out *secretsmanager.GetSecretValueOutput) (string, error) {
	switch {
	case out.SecretString != nil:
		return *out.SecretString, nil
	case out.SecretBinary != nil:
		return string(out.SecretBinary), nil
	default:
		return "", errors.New("answer holds neither SecretString nor SecretBinary")
	}
}
