package steps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// httpReceived is one request as the test server saw it.
type httpReceived struct {
	method, path, rawQuery, host string
	header                       http.Header
	body                         string
}

// httpBundle is a test server that answers with handler and records what
// reached it, and the Execution settings of the steps sent to it.
type httpBundle struct {
	srv    *httptest.Server
	perms  *routine.Permissions
	now    func() time.Time
	redact func(string) string
	stdout strings.Builder

	mu   sync.Mutex
	reqs []httpReceived
}

func setupHTTP(t *testing.T, handler http.HandlerFunc) *httpBundle {
	t.Helper()
	b := &httpBundle{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read the request body: %v", err)
		}
		b.mu.Lock()
		b.reqs = append(b.reqs, httpReceived{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), string(body)})
		b.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// requests returns what reached the server so far.
func (b *httpBundle) requests() []httpReceived {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]httpReceived(nil), b.reqs...)
}

// only returns the one request that reached the server, failing the test
// unless exactly one did.
func (b *httpBundle) only(t *testing.T) httpReceived {
	t.Helper()
	reqs := b.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests reached the server, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

func (b *httpBundle) exec(ctx context.Context, a *routine.HTTPAction) (routine.Outputs, error) {
	res, err := HTTPKind{}.Execute(ctx, &stepkind.Execution{
		RunID: "01RUN", StepID: "call", Attempt: 1,
		Action:      &routine.Action{HTTP: a},
		Permissions: b.perms,
		Stdout:      &b.stdout,
		Now:         b.now,
		Redact:      b.redact,
	})
	if err != nil {
		return nil, err
	}
	return res.Outputs, nil
}

func (b *httpBundle) must(t *testing.T, a *routine.HTTPAction) routine.Outputs {
	t.Helper()
	out, err := b.exec(t.Context(), a)
	if err != nil {
		t.Fatalf("%s %s: %v", a.Method, a.URL, err)
	}
	wantShape(t, "http", out)
	return out
}

// fails runs a and returns its *Error, failing the test unless it fails
// with the code and retryable given and a message holding each of want.
func (b *httpBundle) fails(t *testing.T, a *routine.HTTPAction, code string, retryable bool, want ...string) *stepkind.Error {
	t.Helper()
	_, err := b.exec(t.Context(), a)
	if err == nil {
		t.Fatalf("%s %s succeeded, want an error", a.Method, a.URL)
	}
	var se *stepkind.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %q is a %T, not a *stepkind.Error", err, err)
	}
	if c, r, _ := stepkind.Describe(err); c != code || r != retryable {
		t.Fatalf("error %q: code %q retryable %v, want %q %v", err, c, r, code, retryable)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q lacks %q", err, w)
		}
	}
	return se
}

func failOnList(entries ...string) *[]string { return &entries }

func TestHTTPRequestsAsDeclared(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		action routine.HTTPAction // URL is relative to the server
		want   httpReceived       // header holds only the headers checked
		absent []string           // headers that must not be sent
	}{{
		name: "GET with query",
		action: routine.HTTPAction{
			URL:     "/tickets?page=2",
			Headers: map[string]string{"Authorization": "Bearer t0k", "x-request-id": "r-1"},
			Query:   map[string]string{"source": "routines", "q": "a b&c=d"},
		},
		want: httpReceived{method: "GET", path: "/tickets", rawQuery: "page=2&q=a+b%26c%3Dd&source=routines",
			header: http.Header{"Authorization": {"Bearer t0k"}, "X-Request-Id": {"r-1"}, "User-Agent": {"routines"}}},
		absent: []string{"Content-Type"},
	}, {
		name: "POST json",
		action: routine.HTTPAction{
			Method: "POST", URL: "/tickets",
			// As the YAML decoder gives it: numbers as uint64 and float64.
			JSON: map[string]any{"subject": "Disk <full> & more", "priority": uint64(3), "ratio": 0.5,
				"tags": []any{"ops", true}, "customer": map[string]any{"id": "c-9", "vip": nil}},
		},
		want: httpReceived{method: "POST", path: "/tickets",
			body:   `{"customer":{"id":"c-9","vip":null},"priority":3,"ratio":0.5,"subject":"Disk <full> & more","tags":["ops",true]}`,
			header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"112"}}},
	}, {
		name:   "POST a json string",
		action: routine.HTTPAction{Method: "post", URL: "/echo", JSON: `say "hi"`},
		want:   httpReceived{method: "POST", path: "/echo", body: `"say \"hi\""`, header: http.Header{"Content-Type": {"application/json"}}},
	}, {
		name:   "PUT form",
		action: routine.HTTPAction{Method: "PUT", URL: "/form", Form: map[string]string{"b": "x y", "a": "1&2"}},
		want: httpReceived{method: "PUT", path: "/form", body: "a=1%262&b=x+y",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
	}, {
		name:   "PATCH text",
		action: routine.HTTPAction{Method: "PATCH", URL: "/notes/1", Body: "line 1\nline 2"},
		want:   httpReceived{method: "PATCH", path: "/notes/1", body: "line 1\nline 2", header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
	}, {
		name: "DELETE with its own Content-Type, User-Agent and Host",
		action: routine.HTTPAction{Method: "DELETE", URL: "/tickets/7", Body: "<why>dup</why>",
			Headers: map[string]string{"content-type": "application/xml", "User-Agent": "crm-sync/2", "Host": "crm.internal"}},
		want: httpReceived{method: "DELETE", path: "/tickets/7", body: "<why>dup</why>", host: "crm.internal",
			header: http.Header{"Content-Type": {"application/xml"}, "User-Agent": {"crm-sync/2"}}},
	}, {
		name:   "HEAD",
		action: routine.HTTPAction{Method: "HEAD", URL: "/tickets"},
		want:   httpReceived{method: "HEAD", path: "/tickets"},
	}, {
		name:   "OPTIONS",
		action: routine.HTTPAction{Method: "OPTIONS", URL: "/tickets"},
		want:   httpReceived{method: "OPTIONS", path: "/tickets"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
			a := tt.action
			a.URL = b.srv.URL + a.URL
			out := b.must(t, &a)
			if out["status"] != "204" {
				t.Fatalf("outputs %v", out)
			}
			got := b.only(t)
			host := tt.want.host
			if host == "" {
				host = strings.TrimPrefix(b.srv.URL, "http://")
			}
			if got.method != tt.want.method || got.path != tt.want.path || got.rawQuery != tt.want.rawQuery || got.body != tt.want.body || got.host != host {
				t.Fatalf("the server got %s %s ?%s host %s body %q\nwant %s %s ?%s host %s body %q",
					got.method, got.path, got.rawQuery, got.host, got.body, tt.want.method, tt.want.path, tt.want.rawQuery, host, tt.want.body)
			}
			for name, values := range tt.want.header {
				if g := got.header.Values(name); strings.Join(g, "|") != strings.Join(values, "|") {
					t.Errorf("header %s: got %q, want %q", name, g, values)
				}
			}
			for _, name := range tt.absent {
				if v := got.header.Values(name); len(v) > 0 {
					t.Errorf("header %s sent: %q", name, v)
				}
			}
		})
	}
}

func TestHTTPOutputs(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Location", "/tickets/42?x=<1>")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "{ \"id\": 42,\n  \"subject\": \"Disk full\", \"big\": 12345678901234567890 }\n")
	})
	out := b.must(t, &routine.HTTPAction{Method: "POST", URL: b.srv.URL + "/tickets", Query: map[string]string{"token": "q-value"}, JSON: map[string]any{"subject": "request-body-text"}})
	want := routine.Outputs{
		"status":         "201",
		"body":           "{ \"id\": 42,\n  \"subject\": \"Disk full\", \"big\": 12345678901234567890 }\n",
		"body_encoding":  "text",
		"body_truncated": "false",
		// Decoded: integers as int, one too big for an int as written.
		"json": map[string]any{"id": 42, "subject": "Disk full", "big": json.Number("12345678901234567890")},
	}
	for k, v := range want {
		if !reflect.DeepEqual(out[k], v) {
			t.Errorf("output %s = %#v, want %#v", k, out[k], v)
		}
	}
	if got := routine.OutputText(out["json"]); got != `{"big":12345678901234567890,"id":42,"subject":"Disk full"}` {
		t.Errorf("json as text %s", got)
	}
	headers, _ := out["headers"].(map[string]any)
	if headers["x-multi"] != "a, b" || headers["content-type"] != "application/json; charset=utf-8" || headers["location"] != "/tickets/42?x=<1>" || headers["content-length"] == "" {
		t.Fatalf("headers %#v", out["headers"])
	}
	log := b.stdout.String()
	if !regexp.MustCompile(`^POST http://127\.0\.0\.1:\d+/tickets → 201 \(\d+ B, \d+ ms\)\n$`).MatchString(log) {
		t.Fatalf("log %q", log)
	}
	for _, secretish := range []string{"q-value", "token", "request-body-text", "Disk full"} {
		if strings.Contains(log, secretish) {
			t.Fatalf("the log shows %q: %q", secretish, log)
		}
	}
}

func TestHTTPJSONOutputOnlyForJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		contentType, body string
		json              any
	}{
		{"application/problem+json", `{"title": "x"}`, map[string]any{"title": "x"}},
		{"application/json", `[1, 2.5, "é"]`, []any{1, 2.5, "é"}},
		{"application/json", `"just text"`, "just text"},
		{"application/json", `{"broken":`, nil},
		{"application/json", `{"a":1} trailing`, nil},
		{"text/plain", `{"a":1}`, nil},
		{"", `{"a":1}`, nil},
	} {
		b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tt.contentType)
			io.WriteString(w, tt.body)
		})
		out := b.must(t, &routine.HTTPAction{URL: b.srv.URL})
		if !reflect.DeepEqual(out["json"], tt.json) || out["body"] != tt.body {
			t.Errorf("%q %q: json %#v body %q, want json %#v", tt.contentType, tt.body, out["json"], out["body"], tt.json)
		}
	}
}

func TestHTTPFailOn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		failOn *[]string
		fails  bool
	}{
		{200, nil, false},
		{304, nil, false},
		{400, nil, true},
		{404, nil, true},
		{404, failOnList(">=500"), false},
		{404, failOnList(">=500", "404"), true},
		{410, failOnList(">=500", "404"), false},
		{503, failOnList(">=500", "404"), true},
		{503, failOnList(), false},
		{401, failOnList(), false},
		{404, failOnList("4xx"), true},
		{500, failOnList("4XX"), false},
		{204, failOnList("2xx"), true},
		{200, failOnList("<201"), true},
		{201, failOnList("<201"), false},
		{499, failOnList("> 400", "<= 300"), true},
		{400, failOnList("> 400", "<= 300"), false},
		{300, failOnList("> 400", "<= 300"), true},
		{418, failOnList("==418"), true},
	} {
		b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			io.WriteString(w, "answer body")
		})
		out, err := b.exec(t.Context(), &routine.HTTPAction{URL: b.srv.URL, FailOn: tt.failOn})
		switch {
		case tt.fails && err == nil:
			t.Errorf("%d with fail_on %v succeeded", tt.status, fmtFailOnList(tt.failOn))
		case !tt.fails && err != nil:
			t.Errorf("%d with fail_on %v: %v", tt.status, fmtFailOnList(tt.failOn), err)
		case !tt.fails && out["status"] != strconv.Itoa(tt.status):
			t.Errorf("%d with fail_on %v: status output %q", tt.status, fmtFailOnList(tt.failOn), out["status"])
		}
	}
}

func fmtFailOnList(f *[]string) any {
	if f == nil {
		return "(default)"
	}
	return *f
}

func TestHTTPStatusErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 600)
	for _, tt := range []struct {
		status    int
		code      string
		retryable bool
	}{
		{400, routine.CodeHTTPStatus, false},
		{401, routine.CodeAuth, false},
		{403, routine.CodeAuth, false},
		{404, routine.CodeHTTPStatus, false},
		{408, routine.CodeHTTPStatus, true},
		{422, routine.CodeHTTPStatus, false},
		{425, routine.CodeHTTPStatus, true},
		{429, routine.CodeRateLimited, true},
		{500, routine.CodeHTTPStatus, true},
		{502, routine.CodeHTTPStatus, true},
		{503, routine.CodeHTTPStatus, true},
	} {
		b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			io.WriteString(w, "  error:\n  "+long)
		})
		status := strconv.Itoa(tt.status) + " " + http.StatusText(tt.status)
		e := b.fails(t, &routine.HTTPAction{Method: "POST", URL: b.srv.URL + "/tickets?k=v"}, tt.code, tt.retryable,
			"http: POST "+b.srv.URL+"/tickets → "+status+": error: "+strings.Repeat("x", 512-len("  error:\n  "))+" …")
		if strings.Contains(e.Error(), strings.Repeat("x", 512-len("  error:\n  ")+1)) || strings.Contains(e.Error(), "k=v") {
			t.Fatalf("%d: error %q quotes more than 512 bytes of the body, or the query", tt.status, e)
		}
		if e.After != 0 {
			t.Fatalf("%d: After %s without Retry-After", tt.status, e.After)
		}
	}
}

func TestHTTPRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
		{"-3", 0},
		{"999999999999", 24 * time.Hour},
	} {
		b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tt.header)
			w.WriteHeader(http.StatusTooManyRequests)
		})
		b.now = func() time.Time { return now }
		e := b.fails(t, &routine.HTTPAction{URL: b.srv.URL}, routine.CodeRateLimited, true, "429 Too Many Requests")
		if _, _, after := stepkind.Describe(e); after != tt.want {
			t.Errorf("Retry-After %q: after %s, want %s", tt.header, after, tt.want)
		}
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	b := setupHTTP(t, hang)
	start := time.Now()
	b.fails(t, &routine.HTTPAction{URL: b.srv.URL + "/slow", Timeout: routine.Duration(100 * time.Millisecond)},
		routine.CodeTimeout, true, "http: GET "+b.srv.URL+"/slow: no answer within 100ms (http.timeout)")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the timeout of 100ms took %s", d)
	}
	if !strings.Contains(b.stdout.String(), "GET "+b.srv.URL+"/slow → no answer (") {
		t.Fatalf("log %q", b.stdout.String())
	}

	// The step's own timeout (or the run's cancellation) is the engine's
	// to report: the error wraps the context's.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := b.exec(ctx, &routine.HTTPAction{URL: b.srv.URL})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap the step's deadline", err)
	}
}

func TestHTTPBodyCap(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("é", 600) // 1200 bytes
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, r.URL.Query().Get("prefix")+body)
	})
	// 1001 bytes end in the middle of an é: the half is dropped.
	out := b.must(t, &routine.HTTPAction{URL: b.srv.URL, MaxBody: 1001})
	if out["body"] != strings.Repeat("é", 500) || out["body_truncated"] != "true" || out["body_encoding"] != "text" || out["json"] != nil {
		t.Fatalf("outputs body_truncated %s body_encoding %s json %#v body of %d bytes", out["body_truncated"], out["body_encoding"], out["json"], len(out["body"].(string)))
	}
	if !strings.Contains(b.stdout.String(), "→ 200 (1001 B, truncated, ") {
		t.Fatalf("log %q", b.stdout.String())
	}
	out = b.must(t, &routine.HTTPAction{URL: b.srv.URL, MaxBody: 1200})
	if out["body"] != body || out["body_truncated"] != "false" {
		t.Fatalf("a body of exactly max_body: truncated %s, %d bytes", out["body_truncated"], len(out["body"].(string)))
	}
	// The default is 1 MiB.
	out = b.must(t, &routine.HTTPAction{URL: b.srv.URL, Query: map[string]string{"prefix": strings.Repeat("a", 1<<20)}})
	if len(out["body"].(string)) != 1<<20 || out["body_truncated"] != "true" {
		t.Fatalf("default cap: truncated %s, %d bytes", out["body_truncated"], len(out["body"].(string)))
	}
}

func TestHTTPBinaryBody(t *testing.T) {
	t.Parallel()
	png := []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0x00, 0xff, 0xfe}
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
	})
	out := b.must(t, &routine.HTTPAction{URL: b.srv.URL + "/logo.png"})
	if out["body_encoding"] != "base64" || out["body"] != base64.StdEncoding.EncodeToString(png) || out["json"] != nil {
		t.Fatalf("outputs %v", out)
	}
	if !strings.Contains(b.stdout.String(), "→ 200 (11 B, ") {
		t.Fatalf("log %q", b.stdout.String())
	}
	// A failing binary answer is not quoted.
	b = setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write(png)
	})
	b.fails(t, &routine.HTTPAction{URL: b.srv.URL}, routine.CodeHTTPStatus, true, "502 Bad Gateway: (11 B of binary body)")
}

func TestHTTPRedirect(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
			return
		}
		io.WriteString(w, "moved here")
	})
	out := b.must(t, &routine.HTTPAction{Method: "POST", URL: b.srv.URL + "/old", Body: "payload"})
	if out["status"] != "200" || out["body"] != "moved here" {
		t.Fatalf("outputs %v", out)
	}
	// A 308 repeats the method and the body.
	reqs := b.requests()
	if len(reqs) != 2 || reqs[1].method != "POST" || reqs[1].path != "/new" || reqs[1].body != "payload" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestHTTPNetworkRefused(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {})
	off := false
	b.perms = &routine.Permissions{Network: &off}
	b.fails(t, &routine.HTTPAction{URL: b.srv.URL}, "", false, "permissions.network: false")
	if n := len(b.requests()); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
	on := true
	b.perms = &routine.Permissions{Network: &on}
	b.must(t, &routine.HTTPAction{URL: b.srv.URL})
}

func TestHTTPInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tt := range []struct {
		action routine.HTTPAction
		want   string
	}{
		{routine.HTTPAction{URL: "ftp://files.example.com/x"}, `url has scheme "ftp": only http:// and https:// are supported`},
		{routine.HTTPAction{URL: "/tickets"}, "url has no scheme"},
		{routine.HTTPAction{URL: "https:///tickets"}, "url has no host"},
		{routine.HTTPAction{URL: "http://a b/"}, "url is not a URL"},
		{routine.HTTPAction{URL: b.srv.URL, Method: "FETCH"}, `method "FETCH" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`},
		{routine.HTTPAction{URL: b.srv.URL, Method: "POST", JSON: map[string]any{}, Body: "x"}, "the step has json and body, but a request has one body"},
		{routine.HTTPAction{URL: b.srv.URL, Headers: map[string]string{"X Id": "a"}}, `header name "X Id"`},
		{routine.HTTPAction{URL: b.srv.URL, FailOn: failOnList(">=4o0")}, `fail_on: ">=4o0" is not a status rule`},
	} {
		b.fails(t, &tt.action, "", false, "http: "+tt.want)
	}
	// A line break in a header value would add a header of its own.
	for _, v := range []string{"a\r\nX-Admin: yes", "a\nX-Admin: yes", "a\rb", "a\x00b"} {
		a := routine.HTTPAction{URL: b.srv.URL, Headers: map[string]string{"X-Id": v}}
		b.fails(t, &a, routine.CodeUnsafeValue, false, "http: header X-Id: unsafe value: a line break or NUL")
	}
	if n := len(b.requests()); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	t.Parallel()
	addr := refusedAddr(t)
	b := &httpBundle{}
	b.fails(t, &routine.HTTPAction{URL: "http://" + addr + "/x?secret=1"}, "", true, "http: GET http://"+addr+"/x: dial tcp", "refused")
}

func TestHTTPLogHidesSecrets(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answer-text") })
	b.redact = func(s string) string { return strings.ReplaceAll(s, "s3cr3t", "***") }
	b.must(t, &routine.HTTPAction{URL: b.srv.URL + "/bots3cr3t/send", Method: "POST", Body: "body-text",
		Headers: map[string]string{"Authorization": "Bearer s3cr3t"}})
	log := b.stdout.String()
	if !strings.HasPrefix(log, "POST "+b.srv.URL+"/… → 200 (11 B, ") {
		t.Fatalf("log %q", log)
	}
	for _, hidden := range []string{"s3cr3t", "***", "bot", "body-text", "answer-text", "Bearer"} {
		if strings.Contains(log, hidden) {
			t.Fatalf("the log shows %q: %q", hidden, log)
		}
	}
}

func TestHTTPTLSFailuresAreNotRetried(t *testing.T) {
	t.Parallel()
	// A certificate no trusted authority signed.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	b := &httpBundle{}
	b.fails(t, &routine.HTTPAction{URL: tlsSrv.URL}, "", false, "http: GET "+tlsSrv.URL+": tls: failed to verify certificate")

	// https:// to a port that speaks plain HTTP.
	plain := setupHTTP(t, func(w http.ResponseWriter, r *http.Request) {})
	b.fails(t, &routine.HTTPAction{URL: strings.Replace(plain.srv.URL, "http://", "https://", 1)}, "", false, "server gave HTTP response to HTTPS client")
}
