package steps

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/tracing"
)

// HTTPKind sends the request of an http step. Each attempt has a client
// and a connection pool of its own, closed when it ends, so no state
// outlives the attempt or is shared between steps.
type HTTPKind struct{}

// Name implements Kind.
func (HTTPKind) Name() string { return "http" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (HTTPKind) DirFree() {}

var _ stepkind.DirFree = HTTPKind{}

// httpErrorBody is how much of a failing answer's body its error quotes.
const httpErrorBody = 512

// httpMaxRetryAfterSeconds bounds a Retry-After in seconds, so that a huge one
// cannot overflow a time.Duration; the engine ignores waits past an hour.
const httpMaxRetryAfterSeconds = 24 * 60 * 60

// Execute implements Kind. It outputs status, headers (a JSON object of
// the lower-cased names and their values joined with ", "), body (text, or
// base64 when body_encoding is base64), body_truncated, and json (the body
// as compact JSON when the answer is JSON, else empty).
// Its Result's Usage counts the bodies it sent and read.
func (HTTPKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	return metered(ctx, func(ctx context.Context) (*stepkind.Result, error) { return httpExecute(ctx, x) })
}

func httpExecute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.HTTP
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("http: the step has no http action"))
	}
	if !x.Permissions.NetworkAllowed() {
		return nil, stepkind.Fail("", false, errors.New("http: the routine sets permissions.network: false, so its steps may not use the network; remove it, or set it to true, to let this step send its request"))
	}
	rules, err := httpFailOnRules(a.FailOn)
	if err != nil {
		return nil, stepkind.Fail("", false, fmt.Errorf("http: fail_on: %w", err))
	}
	timeout := a.Timeout.D()
	if timeout <= 0 {
		timeout = routine.DefaultHTTPTimeout.D()
	}
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := newHTTPRequest(reqCtx, a)
	if err != nil {
		return nil, stepkind.FailInput(fmt.Errorf("http: %w", err))
	}
	target := loggableURL(x, req.URL)
	transport := newHTTPTransport()
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: tracing.Transport(meteredTransport{base: transport})}

	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(x.Stdout, "%s %s → no answer (%d ms)\n", req.Method, target, time.Since(start).Milliseconds())
		return nil, httpRequestError(ctx, reqCtx, req.Method, target, timeout, err)
	}
	defer resp.Body.Close()
	limit := int64(a.MaxBody)
	if limit <= 0 {
		limit = int64(routine.DefaultHTTPMaxBody)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		fmt.Fprintf(x.Stdout, "%s %s → %d, body cut short (%d ms)\n", req.Method, target, resp.StatusCode, time.Since(start).Milliseconds())
		return nil, httpRequestError(ctx, reqCtx, req.Method, target, timeout, fmt.Errorf("read the body: %w", err))
	}
	truncated := int64(len(raw)) > limit
	if truncated {
		raw = raw[:limit]
	}
	size := httpByteCount(len(raw))
	if truncated {
		size += ", truncated"
	}
	fmt.Fprintf(x.Stdout, "%s %s → %d (%s, %d ms)\n", req.Method, target, resp.StatusCode, size, time.Since(start).Milliseconds())

	if slices.ContainsFunc(rules, func(r routine.StatusRule) bool { return r.Match(resp.StatusCode) }) {
		now := time.Now
		if x.Now != nil {
			now = x.Now
		}
		return nil, httpStatusError(req.Method, target, resp, raw, truncated, now())
	}
	body, encoding := httpBodyText(raw, truncated)
	out := routine.Outputs{
		"status":         strconv.Itoa(resp.StatusCode),
		"headers":        httpHeaders(resp.Header),
		"body":           body,
		"body_encoding":  encoding,
		"body_truncated": strconv.FormatBool(truncated),
		"json":           nil,
	}
	if !truncated && isJSONType(resp.Header.Get("Content-Type")) {
		if v, err := routine.DecodeJSON(raw); err == nil {
			out["json"] = v
		}
	}
	return &stepkind.Result{Outputs: out}, nil
}

// newHTTPTransport returns a transport with the settings of
// http.DefaultTransport (proxies from the environment, HTTP/2, the same
// dial and handshake bounds) but a connection pool of its own.
func newHTTPTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// httpFailOnRules parses fail_on; nil (not given) is >=400, [] fails on no
// status.
func httpFailOnRules(failOn *[]string) ([]routine.StatusRule, error) {
	entries := routine.DefaultHTTPFailOn
	if failOn != nil {
		entries = *failOn
	}
	rules := make([]routine.StatusRule, 0, len(entries))
	for _, e := range entries {
		r, err := routine.ParseStatusRule(e)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// newHTTPRequest builds the request a rendered http action declares.
func newHTTPRequest(ctx context.Context, a *routine.HTTPAction) (*http.Request, error) {
	method := strings.ToUpper(strings.TrimSpace(a.Method))
	if method == "" {
		method = routine.DefaultHTTPMethod
	}
	if !slices.Contains(routine.HTTPMethods, method) {
		return nil, fmt.Errorf("method %q is not one of %s", a.Method, strings.Join(routine.HTTPMethods, ", "))
	}
	u, err := routine.CheckHTTPURL(a.URL)
	if err != nil {
		return nil, fmt.Errorf("url %w", err)
	}
	if len(a.Query) > 0 {
		q := make(url.Values, len(a.Query))
		for k, v := range a.Query {
			q.Set(k, v)
		}
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += q.Encode()
	}
	body, contentType, err := httpRequestBody(a)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	for name, value := range a.Headers {
		if err := routine.CheckHTTPHeader(name, value); err != nil {
			return nil, err
		}
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Set(name, value)
	}
	if contentType != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", contentType)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "routines")
	}
	return req, nil
}

// httpRequestBody returns the body of the request and its Content-Type: json,
// form or body, of which at most one is set.
func httpRequestBody(a *routine.HTTPAction) ([]byte, string, error) {
	var set []string
	if a.JSON != nil {
		set = append(set, "json")
	}
	if a.Body != "" {
		set = append(set, "body")
	}
	if a.Form != nil {
		set = append(set, "form")
	}
	switch {
	case len(set) > 1:
		return nil, "", fmt.Errorf("the step has %s, but a request has one body", strings.Join(set, " and "))
	case a.JSON != nil:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(a.JSON); err != nil {
			return nil, "", fmt.Errorf("json: %w", err)
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), "application/json", nil
	case a.Form != nil:
		form := make(url.Values, len(a.Form))
		for k, v := range a.Form {
			form.Set(k, v)
		}
		return []byte(form.Encode()), "application/x-www-form-urlencoded", nil
	case a.Body != "":
		return []byte(a.Body), "text/plain; charset=utf-8", nil
	}
	return nil, "", nil
}

// loggableURL is the request's address as the log shows it: without user
// info, query and fragment, and without the part of it that holds a
// secret, if any does.
func loggableURL(x *stepkind.Execution, u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	if s := c.String(); !holdsSecret(x, s) {
		return s
	}
	if s := c.Scheme + "://" + c.Host + "/…"; !holdsSecret(x, s) {
		return s
	}
	return "(an address that holds a secret)"
}

// httpRequestError describes a request that got no complete answer. The
// step's own timeout and the run's cancellation (ctx) are the engine's to
// report; the request's timeout and a failed connection may pass on
// another try, a certificate that does not verify will not.
func httpRequestError(ctx, reqCtx context.Context, method, target string, timeout time.Duration, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("http: %s %s: %w", method, target, ctx.Err())
	}
	// A *url.Error repeats the whole URL, query and all; the target is
	// enough.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case reqCtx.Err() != nil:
		return &stepkind.Error{Code: routine.CodeTimeout, Retryable: true, Err: fmt.Errorf("http: %s %s: no answer within %s (http.timeout)", method, target, timeout)}
	case errors.As(err, &ne) && ne.Timeout():
		return &stepkind.Error{Code: routine.CodeTimeout, Retryable: true, Err: fmt.Errorf("http: %s %s: %w", method, target, err)}
	}
	var cert *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	// net/http turns the RecordHeaderError of https:// to a plain-HTTP port
	// into an error of its own that only its text tells apart.
	plainPort := strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
	if errors.As(err, &cert) || errors.As(err, &record) || plainPort {
		return stepkind.Fail("", false, fmt.Errorf("http: %s %s: %w", method, target, err))
	}
	return stepkind.Fail("", true, fmt.Errorf("http: %s %s: %w", method, target, err))
}

// httpStatusError is the failure of an answer whose status fail_on matches:
// auth for 401 and 403, rate_limited for 429, else http_status; another
// try may pass after 408, 425, 429 and 5xx, and waits for Retry-After.
func httpStatusError(method, target string, resp *http.Response, body []byte, truncated bool, now time.Time) *stepkind.Error {
	code := routine.CodeHTTPStatus
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		code = routine.CodeAuth
	case http.StatusTooManyRequests:
		code = routine.CodeRateLimited
	}
	retryable := resp.StatusCode >= 500 || slices.Contains([]int{http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests}, resp.StatusCode)
	msg := fmt.Sprintf("http: %s %s → %s", method, target, resp.Status)
	if s := httpBodySnippet(body, truncated); s != "" {
		msg += ": " + s
	}
	return &stepkind.Error{Code: code, Retryable: retryable, After: httpRetryAfter(resp.Header.Get("Retry-After"), now), Err: errors.New(msg)}
}

// httpBodySnippet is the start of a failing answer's body for its error: up
// to httpErrorBody bytes of text on one line, or a note that it is binary.
func httpBodySnippet(body []byte, truncated bool) string {
	cut := truncated
	if len(body) > httpErrorBody {
		body, cut = body[:httpErrorBody], true
	}
	if cut {
		body = httpTrimCutRune(body)
	}
	if !utf8.Valid(body) {
		return fmt.Sprintf("(%s of binary body)", httpByteCount(len(body)))
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if cut && s != "" {
		s += " …"
	}
	return s
}

// httpRetryAfter reads a Retry-After header: seconds, or an HTTP date; 0 when
// it is missing, unreadable or past.
func httpRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(min(max(n, 0), httpMaxRetryAfterSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// httpBodyText returns the body as text when it is UTF-8, else as base64,
// and which it is. A body cut mid-character by max_body loses the part.
func httpBodyText(body []byte, truncated bool) (string, string) {
	if truncated {
		if t := httpTrimCutRune(body); utf8.Valid(t) {
			return string(t), "text"
		}
	}
	if utf8.Valid(body) {
		return string(body), "text"
	}
	return base64.StdEncoding.EncodeToString(body), "base64"
}

// httpTrimCutRune drops the start of a UTF-8 character cut off at the end
// of b, if any.
func httpTrimCutRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return b // ASCII: nothing is cut
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

// httpHeaders is the response headers as the headers output holds them:
// lower-cased names (as HTTP/2 writes them, so one spelling finds a
// header whatever the server wrote), each with its values joined by ", ".
func httpHeaders(h http.Header) map[string]any {
	m := make(map[string]any, len(h))
	for name, values := range h {
		name = strings.ToLower(name)
		if prev, ok := m[name]; ok {
			values = append([]string{prev.(string)}, values...)
		}
		m[name] = strings.Join(values, ", ")
	}
	return m
}

// isJSONType reports whether a Content-Type names JSON: application/json or
// a type ending in +json (application/problem+json).
func isJSONType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// httpByteCount writes a size for the log: 312 B, 4.2 KiB, 1.0 MiB.
func httpByteCount(n int) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

var _ stepkind.Kind = HTTPKind{}
