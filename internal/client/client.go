// Package client is the Go client of the daemon's JSON API (/v1, see
// docs/serve.md and docs/remote.md): the one way the CLI's commands that
// act on a daemon or server (invoke, emit, runs, show, logs, dlq,
// secrets, status) and the emit step talk to it.
//
// It speaks the wire types of package api (RunDetail, Event,
// EventResult, Status…), which the server writes: one definition of each
// type serves both ends, and a client does not import the server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/api"
)

// Client speaks the API of one daemon or server. Safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends the requests with h instead of http.DefaultClient
// (a transport of its own, a timeout for every request).
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http = h }
}

// New returns the client of the API at baseURL (such as
// http://127.0.0.1:7070; a trailing / is ignored). token, when set, is
// sent as "Authorization: Bearer <token>".
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the URL the client was made with, without a trailing /.
func (c *Client) BaseURL() string { return c.base }

// APIError is an answer other than 2xx: its status and the API's message
// (the "error" of its JSON body, else the body).
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

// Error says what was asked, the answer's status and the API's message;
// for a 401, how to pass a token.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
	if e.Status == http.StatusUnauthorized {
		msg += " (pass the token the daemon or server was started with: --token, an emit step's token:, or $ROUTINES_TOKEN)"
	}
	return msg
}

// UnreachableError is a request that got no answer at all: nothing
// listens at URL, or the connection failed or timed out.
type UnreachableError struct {
	URL string
	Err error
}

// Error names the URL nothing answered at, and why.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("nothing answers at %s: %v", e.URL, e.Err)
}

// Unwrap returns the cause, so errors.Is finds context.DeadlineExceeded
// or a refused connection's syscall error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// StreamEndedError is FollowLogs's error when the stream ended before
// the run did (the daemon was stopped): following again resumes.
type StreamEndedError struct {
	URL, RunID string
}

// Error names the daemon and the run.
func (e *StreamEndedError) Error() string {
	return fmt.Sprintf("the daemon at %s stopped streaming run %s before it ended (was it stopped?)", e.URL, e.RunID)
}

// CreateRun fires the routine name with input (POST
// /v1/routines/<name>/runs) and returns the id of the queued run.
func (c *Client) CreateRun(ctx context.Context, name string, input map[string]string) (string, error) {
	if input == nil {
		input = map[string]string{}
	}
	var queued api.Queued
	err := c.do(ctx, http.MethodPost, "/v1/routines/"+url.PathEscape(name)+"/runs", input, &queued)
	return queued.RunID, err
}

// GetRun returns run id (or a unique prefix of it) with its steps (GET
// /v1/runs/<id>).
func (c *Client) GetRun(ctx context.Context, id string) (*api.RunDetail, error) {
	var run api.RunDetail
	if err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// FollowLogs reads the events of run id (of step, when set) live from
// GET /v1/runs/<id>/logs and calls fn for each, up to the run's end; then
// it returns nil. It returns fn's error, or a *StreamEndedError when the
// stream ends first.
func (c *Client) FollowLogs(ctx context.Context, id, step string, fn func(api.Event) error) error {
	path := "/v1/runs/" + url.PathEscape(id) + "/logs"
	if step != "" {
		path += "?step=" + url.QueryEscape(step)
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = api.ReadEvents(resp.Body, fn)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &StreamEndedError{URL: c.base, RunID: id}
	}
	return err
}

// Emit publishes event with data (any value that marshals to JSON; nil is
// {}) to POST /v1/events/<event>. dedupe, when set, overrides the
// listeners' dedupe keys; window, when positive, their windows.
func (c *Client) Emit(ctx context.Context, event string, data any, dedupe string, window time.Duration) (*api.EventResult, error) {
	if data == nil {
		data = struct{}{}
	}
	q := url.Values{}
	if dedupe != "" {
		q.Set("dedupe", dedupe)
	}
	if window > 0 {
		q.Set("window", window.String())
	}
	path := "/v1/events/" + url.PathEscape(event)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var res api.EventResult
	if err := c.do(ctx, http.MethodPost, path, data, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Status returns what the daemon's operator should know (GET /v1/status).
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// do sends in (JSON, when not nil) and decodes a 2xx answer into out,
// when not nil.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	resp, err := c.send(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx answer, whose body the caller
// closes; any other answer is an *APIError, no answer an
// *UnreachableError.
func (c *Client) send(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	return c.sendAs(ctx, method, path, body, "application/json", accept)
}

// sendAs is send with a body of another content type.
func (c *Client) sendAs(ctx context.Context, method, path string, body []byte, contentType, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if cerr := certificateError(c.base, err); cerr != nil {
			return nil, cerr
		}
		return nil, &UnreachableError{URL: c.base, Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg}
}
