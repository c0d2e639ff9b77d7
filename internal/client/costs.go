package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/routines-dev/routines/internal/api"
)

// Costs returns what the runs that ended within since (a duration such as
// 30d) used and cost, by routine or tag, with the budgets of the month
// (GET /v1/costs).
func (c *Client) Costs(ctx context.Context, by, since string) (*api.CostReport, error) {
	v := url.Values{"by": {by}, "since": {since}}
	var rep api.CostReport
	if err := c.do(ctx, http.MethodGet, "/v1/costs?"+v.Encode(), nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
