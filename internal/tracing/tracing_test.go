package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/routines-dev/routines/internal/tracing"
	"github.com/routines-dev/routines/internal/tracing/tracingtest"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestNoEndpointNoExporter(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"no variable":   nil,
		"service only":  {"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"},
		"sdk disabled":  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
		"exporter none": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := tracing.New(t.Context(), tracing.Config{Getenv: env(vars)})
			if err != nil {
				t.Fatal(err)
			}
			if p.Enabled() || p.Endpoint != "" {
				t.Fatalf("an exporter to %q was made", p.Endpoint)
			}
			_, span := p.Tracer().Start(t.Context(), "x")
			if span.IsRecording() || span.SpanContext().IsValid() {
				t.Fatalf("the no-op provider made a real span: %+v", span.SpanContext())
			}
			if err := p.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadVariables(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: want the URL of an OTLP receiver, such as http://localhost:4318"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: want the URL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=thrift: want http/protobuf, http/json or grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT=10s: want a number of milliseconds"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION=zstd: want gzip or none"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER=sometimes: want one of"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG=2: want a ratio from 0 to 1"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: routines exports traces with otlp only"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES: want key=value pairs"},
		// A header's value may be a token: the error names the key only.
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%zz"}, "OTEL_EXPORTER_OTLP_HEADERS: the value of api-key is not percent-encoded properly"},
	} {
		_, err := tracing.New(t.Context(), tracing.Config{Getenv: env(tc.vars)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got error %v, want %q", tc.vars, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr") {
			t.Errorf("the error quotes a header's value: %v", err)
		}
	}
}

// newProvider returns a provider exporting to a new receiver, with vars
// over the endpoint.
func newProvider(t *testing.T, vars map[string]string) (*tracing.Provider, *tracingtest.Receiver) {
	t.Helper()
	rcv := tracingtest.NewReceiver(t)
	m := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL + "/"}
	for k, v := range vars {
		m[k] = v
	}
	p, err := tracing.New(t.Context(), tracing.Config{Getenv: env(m), Role: "worker", Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	if !p.Enabled() {
		t.Fatal("no exporter with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	return p, rcv
}

func TestExportOnShutdown(t *testing.T) {
	t.Parallel()
	p, rcv := newProvider(t, map[string]string{
		"OTEL_SERVICE_NAME":              "billing-routines",
		"OTEL_RESOURCE_ATTRIBUTES":       "deployment.environment=test%20env,service.name=ignored",
		"OTEL_EXPORTER_OTLP_HEADERS":     "x-api-key=k1",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
	})
	if !strings.HasSuffix(p.Endpoint, "/v1/traces") {
		t.Errorf("endpoint %s: want the base URL with /v1/traces", p.Endpoint)
	}
	_, span := p.Tracer().Start(t.Context(), "unit")
	span.End()
	// The batch processor holds the span; Shutdown sends it.
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 || spans[0].Name != "unit" {
		t.Fatalf("received %s", rcv)
	}
	res := spans[0].Resource
	for k, want := range map[string]string{
		"service.name": "billing-routines", "service.version": "v1.2.3", "routines.role": "worker",
		"deployment.environment": "test env", "telemetry.sdk.language": "go",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, res[k], want, res)
		}
	}
}

func TestTracesEndpointAsIs(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	p, err := tracing.New(t.Context(), tracing.Config{Getenv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rcv.URL + "/v1/traces",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:1/elsewhere",
	})})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer().Start(t.Context(), "x")
	span.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rcv.Posts() != 1 {
		t.Fatalf("%d posts to the traces endpoint, want 1", rcv.Posts())
	}
}

func TestExportOverGRPC(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewGRPCReceiver(t)
	p, err := tracing.New(t.Context(), tracing.Config{Getenv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    rcv.URL,
		"OTEL_EXPORTER_OTLP_PROTOCOL":    "grpc",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
	}), Role: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint != rcv.URL {
		t.Errorf("endpoint %s: want %s as is (no path over gRPC)", p.Endpoint, rcv.URL)
	}
	_, span := p.Tracer().Start(t.Context(), "over grpc")
	span.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := rcv.WaitFor(t, "over grpc"); s.Resource["routines.role"] != "server" {
		t.Errorf("resource %v", s.Resource)
	}
}

func TestTransportClientSpan(t *testing.T) {
	t.Parallel()
	p, rcv := newProvider(t, nil)
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "body")
	}))
	defer srv.Close()
	client := tracing.Client(nil)

	// Outside a recording span: nothing added.
	resp, err := client.Get(srv.URL + "/secret-path?token=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tp := <-got; tp != "" {
		t.Errorf("traceparent %q sent without a span", tp)
	}

	ctx, parent := p.Tracer().Start(t.Context(), "step s")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/secret-path?token=abc", strings.NewReader("x"))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	parent.End()
	if req.Header.Get("traceparent") != "" {
		t.Error("the transport changed the caller's request")
	}
	tp := <-got
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	call := rcv.WaitFor(t, "POST")
	if call.Kind != "client" || call.ParentSpanID != parent.SpanContext().SpanID().String() || call.TraceID != parent.SpanContext().TraceID().String() {
		t.Errorf("call span %+v: want a client child of %s", call, parent.SpanContext().SpanID())
	}
	if want := "00-" + call.TraceID + "-" + call.SpanID + "-01"; tp != want {
		t.Errorf("server got traceparent %q, want %q", tp, want)
	}
	for k, want := range map[string]string{"http.request.method": "POST", "server.address": "127.0.0.1", "http.response.status_code": "418", "error.type": "418"} {
		if call.Attrs[k] != want {
			t.Errorf("%s = %q, want %q", k, call.Attrs[k], want)
		}
	}
	if !call.Error {
		t.Error("a 418 answer: want an error status")
	}
	for k, v := range call.Attrs {
		if strings.Contains(v, "secret-path") || strings.Contains(v, "abc") {
			t.Errorf("attribute %s=%q shows the path or query", k, v)
		}
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("tracestate", "vendor=x")
	sc := trace.SpanContextFromContext(tracing.Extract(t.Context(), h))
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() || sc.TraceState().Get("vendor") != "x" {
		t.Errorf("extracted %+v", sc)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz-01"} {
		h.Set("traceparent", bad)
		if sc := trace.SpanContextFromContext(tracing.Extract(t.Context(), h)); sc.IsValid() {
			t.Errorf("traceparent %q gave %+v", bad, sc)
		}
	}
}
