package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/routines-dev/routines/internal/api"
)

// Push is one push: a routine directory bundled as tar.gz, and who
// pushes it why.
type Push struct {
	Bundle    []byte
	Author    string
	Message   string
	GitCommit string
}

// Push uploads a bundle (POST /v1/routines) and returns the routine's
// current revision, and whether the push made it.
func (c *Client) Push(ctx context.Context, p *Push) (*api.PushResult, error) {
	q := url.Values{}
	for k, v := range map[string]string{"author": p.Author, "message": p.Message, "git_commit": p.GitCommit} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/v1/routines"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.sendAs(ctx, http.MethodPost, path, p.Bundle, "application/gzip", "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res api.PushResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("POST %s: unreadable answer: %w", path, err)
	}
	return &res, nil
}

// Revisions lists the revisions of a routine, the current one first
// (GET /v1/routines/<name>/revisions); limit 0 lists them all.
func (c *Client) Revisions(ctx context.Context, name string, limit int) ([]api.Revision, error) {
	path := "/v1/routines/" + url.PathEscape(name) + "/revisions"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out []api.Revision
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Rollback makes an earlier revision of a routine current again
// (POST /v1/routines/<name>/rollback).
func (c *Client) Rollback(ctx context.Context, name string, rb api.Rollback) (*api.Revision, error) {
	var rev api.Revision
	if err := c.do(ctx, http.MethodPost, "/v1/routines/"+url.PathEscape(name)+"/rollback", rb, &rev); err != nil {
		return nil, err
	}
	return &rev, nil
}

// Bundle returns the tar.gz of a revision of a routine (a hash or a
// unique prefix), read up to max bytes.
func (c *Client) Bundle(ctx context.Context, name, revision string, max int64) ([]byte, error) {
	path := "/v1/routines/" + url.PathEscape(name) + "/revisions/" + url.PathEscape(revision) + "/bundle"
	resp, err := c.send(ctx, http.MethodGet, path, nil, "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("GET %s: bundle larger than %d bytes", path, max)
	}
	return data, nil
}
