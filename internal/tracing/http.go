package tracing

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator reads and writes the W3C traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// Extract returns ctx carrying the caller's span from the traceparent
// (and tracestate) of h, when h has a valid one: a run queued with it
// continues the caller's trace (scheduler.Queue.Enqueue). A missing or
// malformed header leaves ctx as it is.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("traceparent") == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Transport returns base (http.DefaultTransport when nil) with a client
// span around each request sent within a recording span — a step's — and
// the request's traceparent set to it, so the server called continues
// the trace. Outside one (tracing off) it adds nothing and costs a
// context lookup. The span names the method, host and port and the
// status; never the path or query, which may hold a secret or a value of
// the trigger.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return transport{base: base}
}

// Client returns a copy of c (http.DefaultClient when nil) whose
// transport is Transport's.
func Client(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cp := *c
	cp.Transport = Transport(c.Transport)
	return &cp
}

type transport struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := trace.SpanFromContext(req.Context())
	if !parent.IsRecording() {
		return t.base.RoundTrip(req)
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Hostname()),
		attribute.String("url.scheme", req.URL.Scheme),
	}
	if port := portOf(req); port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	ctx, span := parent.TracerProvider().Tracer(Name).Start(req.Context(), req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	// A RoundTripper must not change the request it is given.
	req = req.Clone(ctx)
	propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		kind := "connection"
		var ne net.Error
		switch {
		case errors.Is(err, context.Canceled):
			kind = "canceled"
		case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
			kind = "timeout"
		}
		span.SetAttributes(attribute.String("error.type", kind))
		span.SetStatus(codes.Error, "no answer: "+kind)
		span.End()
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	}
	// The call lasts until its body is read or closed.
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// portOf returns the port the request goes to, the scheme's when the URL
// names none.
func portOf(req *http.Request) int {
	if p, err := strconv.Atoi(req.URL.Port()); err == nil {
		return p
	}
	switch req.URL.Scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// spanBody ends the span of a call once its body is read to the end, or
// closed.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

func (b *spanBody) end() { b.once.Do(func() { b.span.End() }) }
