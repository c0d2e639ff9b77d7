package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
)

// ListRuns returns the runs q selects, newest first, without their steps
// (GET /v1/runs).
func (c *Client) ListRuns(ctx context.Context, q api.RunQuery) ([]*routine.Run, error) {
	return c.runs(ctx, "/v1/runs", q)
}

// ListDead returns the dead runs, newest first: the dead-letter queue
// (GET /v1/dlq). q.States must be empty.
func (c *Client) ListDead(ctx context.Context, q api.RunQuery) ([]*routine.Run, error) {
	return c.runs(ctx, "/v1/dlq", q)
}

func (c *Client) runs(ctx context.Context, path string, q api.RunQuery) ([]*routine.Run, error) {
	v := url.Values{}
	if q.Routine != "" {
		v.Set("routine", q.Routine)
	}
	for _, s := range q.States {
		v.Add("state", string(s))
	}
	if q.Trigger != "" {
		v.Set("trigger", q.Trigger)
	}
	if q.Tag != "" {
		v.Set("tag", q.Tag)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var runs []*routine.Run
	err := c.do(ctx, http.MethodGet, path, nil, &runs)
	return runs, err
}

// GetLogs returns the lines of run id (of step, when set) stored so far,
// in order (GET /v1/runs/<id>/logs as JSON).
func (c *Client) GetLogs(ctx context.Context, id, step string) ([]routine.LogLine, error) {
	path := "/v1/runs/" + url.PathEscape(id) + "/logs"
	if step != "" {
		path += "?step=" + url.QueryEscape(step)
	}
	var lines []routine.LogLine
	err := c.do(ctx, http.MethodGet, path, nil, &lines)
	return lines, err
}

// CancelRun cancels run id and returns it (POST /v1/runs/<id>/cancel): a
// queued run cancelled; a running one still running, its cancel
// requested, unless it ended within wait (when positive). A run that
// ended otherwise is a 409 *APIError.
func (c *Client) CancelRun(ctx context.Context, id string, wait time.Duration) (*api.RunDetail, error) {
	path := "/v1/runs/" + url.PathEscape(id) + "/cancel"
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	var run api.RunDetail
	if err := c.do(ctx, http.MethodPost, path, nil, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// RerunRun queues a new run with the input and trigger payload of the
// ended run id and returns its id (POST /v1/runs/<id>/rerun). A run that
// has not ended is a 409 *APIError.
func (c *Client) RerunRun(ctx context.Context, id string) (string, error) {
	var queued api.Queued
	err := c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/rerun", nil, &queued)
	return queued.RunID, err
}

// ReplayRun queues a new run with the input and trigger payload of the
// dead run id and returns its id (POST /v1/dlq/<id>/replay). A run that
// is not dead is a 409 *APIError.
func (c *Client) ReplayRun(ctx context.Context, id string) (string, error) {
	var queued api.Queued
	err := c.do(ctx, http.MethodPost, "/v1/dlq/"+url.PathEscape(id)+"/replay", nil, &queued)
	return queued.RunID, err
}

// ListRoutines returns the routines served, by name (GET /v1/routines).
func (c *Client) ListRoutines(ctx context.Context) ([]api.Routine, error) {
	var rs []api.Routine
	err := c.do(ctx, http.MethodGet, "/v1/routines", nil, &rs)
	return rs, err
}

// ListSecrets returns the secrets of the builtin vault, by name, without
// values (GET /v1/secrets).
func (c *Client) ListSecrets(ctx context.Context) ([]api.Secret, error) {
	var list []api.Secret
	err := c.do(ctx, http.MethodGet, "/v1/secrets", nil, &list)
	return list, err
}

// SetSecret stores value as the secret name and returns its version (PUT
// /v1/secrets/<name>). The value travels in the body only.
func (c *Client) SetSecret(ctx context.Context, name, value string) (int, error) {
	var v api.SecretVersion
	err := c.do(ctx, http.MethodPut, "/v1/secrets/"+url.PathEscape(name), api.SecretValue{Value: value}, &v)
	return v.Version, err
}

// DeleteSecret removes the secret name (DELETE /v1/secrets/<name>); one
// not stored is a 404 *APIError.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/secrets/"+url.PathEscape(name), nil, nil)
}

// ListAlerts returns the records of the alerts' firings and clearings,
// newest first (GET /v1/alerts).
func (c *Client) ListAlerts(ctx context.Context, q api.AlertQuery) ([]*routine.AlertRecord, error) {
	v := url.Values{}
	if q.Routine != "" {
		v.Set("routine", q.Routine)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/alerts"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var list []*routine.AlertRecord
	err := c.do(ctx, http.MethodGet, path, nil, &list)
	return list, err
}
