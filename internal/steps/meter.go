package steps

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// meter counts what one attempt of a step that calls other systems
// consumed, for its costs: the bytes of the request and response bodies
// of its HTTP calls (meteredTransport finds the meter in the request's
// context, so a client shared by attempts counts each attempt apart) and
// the tokens of its model calls, by model.
type meter struct {
	mu    sync.Mutex
	usage routine.Usage
}

type meterKey struct{}

// metered runs one attempt of a kind with a meter in its context, and
// puts what the meter counted in the attempt's Result.Usage, also when
// the attempt failed: a failed call still moved bytes.
func metered(ctx context.Context, attempt func(ctx context.Context) (*stepkind.Result, error)) (*stepkind.Result, error) {
	m := &meter{}
	res, err := attempt(context.WithValue(ctx, meterKey{}, m))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usage.IsZero() {
		return res, err
	}
	if res == nil {
		res = &stepkind.Result{}
	}
	res.Usage.Add(m.usage)
	return res, err
}

// meterOf returns the meter of the attempt ctx belongs to, or nil.
func meterOf(ctx context.Context) *meter {
	m, _ := ctx.Value(meterKey{}).(*meter)
	return m
}

// countTokens adds the tokens of a model call to the attempt of ctx.
func countTokens(ctx context.Context, model string, in, out int64) {
	if m := meterOf(ctx); m != nil {
		m.add(routine.Usage{Tokens: map[string]routine.Tokens{model: {Input: in, Output: out}}})
	}
}

// countSent adds n bytes sent to the attempt of ctx.
func countSent(ctx context.Context, n int64) {
	if m := meterOf(ctx); m != nil {
		m.add(routine.Usage{BytesSent: n})
	}
}

func (m *meter) add(u routine.Usage) {
	m.mu.Lock()
	m.usage.Add(u)
	m.mu.Unlock()
}

// meteredTransport counts the request and response bodies of the calls
// made with the context of a metered attempt: the bytes of the request
// body as the transport reads it to write it, and of the response body as
// the step reads it (after the transport's transparent gzip decoding,
// when it asked for gzip itself). Headers, TLS and what a step leaves
// unread are not counted.
type meteredTransport struct{ base http.RoundTripper }

// metering returns hc with a transport that meters its calls; a nil hc is
// a plain client.
func metering(hc *http.Client) *http.Client {
	c := &http.Client{}
	if hc != nil {
		*c = *hc
	}
	c.Transport = meteredTransport{base: c.Transport}
	return c
}

// RoundTrip implements http.RoundTripper.
func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	m := meterOf(req.Context())
	if m == nil {
		return base.RoundTrip(req)
	}
	if req.Body != nil && req.Body != http.NoBody {
		r := *req // a RoundTripper leaves the caller's request as it is
		r.Body = &countingBody{ReadCloser: req.Body, count: func(n int64) { m.add(routine.Usage{BytesSent: n}) }}
		req = &r
	}
	resp, err := base.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, count: func(n int64) { m.add(routine.Usage{BytesReceived: n}) }}
	}
	return resp, err
}

// countingBody counts the bytes read through it.
type countingBody struct {
	io.ReadCloser
	count func(n int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.count(int64(n))
	}
	return n, err
}
