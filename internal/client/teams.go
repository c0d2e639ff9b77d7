package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

// CreateToken creates a token and returns it with its value, which the
// server shows this once (POST /v1/tokens).
func (c *Client) CreateToken(ctx context.Context, in api.TokenCreate) (*api.NewToken, error) {
	var t api.NewToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", in, &t)
	return &t, err
}

// ListTokens returns the tokens the caller may manage, by name, without
// values (GET /v1/tokens).
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var list []api.Token
	err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &list)
	return list, err
}

// RevokeToken revokes the token with this name or id (DELETE
// /v1/tokens/<ref>) and returns it.
func (c *Client) RevokeToken(ctx context.Context, ref string) (*api.Token, error) {
	var t api.Token
	err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(ref), nil, &t)
	return &t, err
}

// ListNamespaces returns the namespaces with a policy (GET /v1/namespaces).
func (c *Client) ListNamespaces(ctx context.Context) ([]api.Namespace, error) {
	var list []api.Namespace
	err := c.do(ctx, http.MethodGet, "/v1/namespaces", nil, &list)
	return list, err
}

// SetNamespace changes the fields of the policy of namespace name that
// set holds, keeping the others (PUT /v1/namespaces/<name>), and returns
// the whole policy.
func (c *Client) SetNamespace(ctx context.Context, name string, set api.NamespaceSet) (*api.Namespace, error) {
	var out api.Namespace
	err := c.do(ctx, http.MethodPut, "/v1/namespaces/"+url.PathEscape(name), set, &out)
	return &out, err
}

// ListAudit returns records of the trail of actions, oldest first (GET
// /v1/audit).
func (c *Client) ListAudit(ctx context.Context, q api.AuditQuery) ([]api.Action, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var list []api.Action
	err := c.do(ctx, http.MethodGet, path, nil, &list)
	return list, err
}
