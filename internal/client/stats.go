package client

import (
	"context"
	"net/http"

	"github.com/routines-dev/routines/internal/api"
)

// Stats returns the figures of the runs that ended in the range q
// selects, per routine and overall (GET /v1/stats).
func (c *Client) Stats(ctx context.Context, q api.StatsQuery) (*api.Stats, error) {
	var out api.Stats
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/stats", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Report returns the value report of the runs that ended in the range
// q.Since, q.Until select (GET /v1/report).
func (c *Client) Report(ctx context.Context, q api.StatsQuery) (*api.Report, error) {
	var out api.Report
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/report", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func withQuery(path string, q api.StatsQuery) string {
	if v := q.Values(); len(v) > 0 {
		return path + "?" + v.Encode()
	}
	return path
}
