// Package tracing owns the OpenTelemetry traces of a daemon: the
// TracerProvider built from the standard OTEL_* variables (OTLP over
// HTTP when an endpoint is set, a no-op otherwise), the client spans of
// the HTTP calls steps make, and the W3C traceparent a request brings.
// The engine does not import it: it takes a trace.Tracer (the API, no
// SDK) in its Config, and main hands it this package's.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of the spans Routines makes.
const Name = "github.com/routines-dev/routines"

// DefaultServiceName is service.name when OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) does not set one.
const DefaultServiceName = "routines"

// Config is what New builds a Provider from.
type Config struct {
	// Getenv reads the OTEL_* variables; os.Getenv when nil.
	Getenv func(string) string
	// Role is the part the process plays (serve, server, worker): the
	// resource attribute routines.role.
	Role string
	// Version is service.version, when known.
	Version string
}

// Provider is the tracer provider of a process: an OTLP exporter behind
// a batch span processor, or a no-op that costs nothing when no endpoint
// is configured.
type Provider struct {
	tp trace.TracerProvider
	// sdk is nil for the no-op provider.
	sdk *sdktrace.TracerProvider
	// Endpoint is where spans are exported ("" when they are not), with
	// no credentials in it: the daemon's start-up log names it.
	Endpoint string
	once     sync.Once
	err      error
}

// Noop returns a provider that records nothing.
func Noop() *Provider {
	return &Provider{tp: noop.NewTracerProvider()}
}

// New returns the provider the OTEL_* variables describe: OTLP export to
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT
// (+ /v1/traces over HTTP), over OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf,
// http/json or grpc), else a no-op. OTEL_SDK_DISABLED=true and
// OTEL_TRACES_EXPORTER=none turn it off. A variable it cannot use is an
// error that names it (never the value of a header, which may be a token).
func New(ctx context.Context, cfg Config) (*Provider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return Noop(), nil
	}
	switch exp := env("OTEL_TRACES_EXPORTER"); exp {
	case "", "otlp":
	case "none":
		return Noop(), nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: routines exports traces with otlp only; set it to otlp, or none to export nothing", exp)
	}
	o, err := exportOptionsOf(env)
	if o == nil || err != nil {
		return Noop(), err
	}
	sampler, err := samplerOf(env)
	if err != nil {
		return nil, err
	}
	res, err := resourceOf(ctx, env, cfg)
	if err != nil {
		return nil, err
	}
	exp, err := o.exporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter for %s: %w", o.endpoint.Redacted(), err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	)
	return &Provider{tp: sdk, sdk: sdk, Endpoint: o.endpoint.Redacted()}, nil
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Tracer returns the tracer of Routines' spans.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer(Name) }

// Shutdown exports the spans still buffered, within ctx, and stops the
// exporter; later spans are dropped. It may be called more than once.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	p.once.Do(func() {
		if err := p.sdk.Shutdown(ctx); err != nil {
			p.err = fmt.Errorf("flush traces to %s: %w", p.Endpoint, err)
		}
	})
	return p.err
}

// exportOptions are how spans are exported, read from the variables.
type exportOptions struct {
	grpc        bool
	json        bool // http/json rather than http/protobuf
	endpoint    *url.URL
	headers     map[string]string
	timeout     time.Duration
	compression bool // gzip
}

// exportOptionsOf reads the exporter's variables; the traces' own win over
// the general ones. It returns nil when no endpoint is set.
func exportOptionsOf(env func(string) string) (*exportOptions, error) {
	o := &exportOptions{headers: map[string]string{}}
	switch name, v := signalVar(env, "PROTOCOL"); v {
	case "", "http/protobuf":
	case "http/json":
		o.json = true
	case "grpc":
		o.grpc = true
	default:
		return nil, fmt.Errorf("%s=%s: want http/protobuf, http/json or grpc", name, v)
	}
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	base := raw == ""
	if base {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: want the URL of an OTLP receiver, such as http://localhost:4318 (http/protobuf) or http://localhost:4317 (grpc)", name)
	}
	if base && !o.grpc {
		// Over HTTP the base endpoint names the collector; each signal
		// has its path.
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	o.endpoint = u
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if err := parseList(env(name), o.headers); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if name, v := signalVar(env, "TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("%s=%s: want a number of milliseconds, such as 10000", name, v)
		}
		o.timeout = time.Duration(ms) * time.Millisecond
	}
	switch name, v := signalVar(env, "COMPRESSION"); v {
	case "", "none":
	case "gzip":
		o.compression = true
	default:
		return nil, fmt.Errorf("%s=%s: want gzip or none", name, v)
	}
	return o, nil
}

// exporter returns the OTLP exporter o describes. The gRPC one costs the
// binary 0.24 MB only: the OTLP/HTTP exporter's protobuf types already
// link gRPC in.
func (o *exportOptions) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if o.grpc {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(o.endpoint.String()), otlptracegrpc.WithHeaders(o.headers)}
		if o.timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(o.timeout))
		}
		if o.compression {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(o.endpoint.String()), otlptracehttp.WithHeaders(o.headers)}
	if o.json {
		opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	}
	if o.timeout > 0 {
		opts = append(opts, otlptracehttp.WithTimeout(o.timeout))
	}
	if o.compression {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	}
	return otlptracehttp.New(ctx, opts...)
}

// signalVar returns OTEL_EXPORTER_OTLP_TRACES_<key> when set, else
// OTEL_EXPORTER_OTLP_<key>, with the name of the one read.
func signalVar(env func(string) string, key string) (name, value string) {
	name = "OTEL_EXPORTER_OTLP_TRACES_" + key
	if v := env(name); v != "" {
		return name, strings.ToLower(v)
	}
	name = "OTEL_EXPORTER_OTLP_" + key
	return name, strings.ToLower(env(name))
}

// parseList adds the key=value pairs of a comma-separated list (the
// format of OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES,
// values percent-encoded) to m. Its errors never quote a value.
func parseList(s string, m map[string]string) error {
	for item := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return errors.New("want key=value pairs separated by commas")
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("the value of %s is not percent-encoded properly", k)
		}
		m[k] = val
	}
	return nil
}

// samplerOf reads OTEL_TRACES_SAMPLER and its argument; the default is
// parentbased_always_on.
func samplerOf(env func(string) string) (sdktrace.Sampler, error) {
	name, arg := strings.ToLower(env("OTEL_TRACES_SAMPLER")), env("OTEL_TRACES_SAMPLER_ARG")
	ratio := func() (sdktrace.Sampler, error) {
		if arg == "" {
			return sdktrace.AlwaysSample(), nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: want a ratio from 0 to 1, such as 0.25", arg)
		}
		return sdktrace.TraceIDRatioBased(f), nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return ratio()
	case "parentbased_traceidratio":
		s, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(s), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%s: want one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// resourceOf describes the process: OTEL_RESOURCE_ATTRIBUTES, then
// service.name (OTEL_SERVICE_NAME, else the attributes', else routines),
// service.version and routines.role, and the SDK's own.
func resourceOf(ctx context.Context, env func(string) string, cfg Config) (*resource.Resource, error) {
	attrs := map[string]string{}
	if err := parseList(env("OTEL_RESOURCE_ATTRIBUTES"), attrs); err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	if name := env("OTEL_SERVICE_NAME"); name != "" {
		attrs["service.name"] = name
	}
	if attrs["service.name"] == "" {
		attrs["service.name"] = DefaultServiceName
	}
	if cfg.Version != "" {
		attrs["service.version"] = cfg.Version
	}
	if cfg.Role != "" {
		attrs["routines.role"] = cfg.Role
	}
	kvs := make([]attribute.KeyValue, 0, len(attrs))
	for k, v := range attrs {
		kvs = append(kvs, attribute.String(k, v))
	}
	return resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(kvs...))
}
