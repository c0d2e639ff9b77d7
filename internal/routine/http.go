package routine

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPAction sends one HTTP request. Its strings (url, method, headers,
// query, the strings inside json, body, form) are templates; fail_on is not.
type HTTPAction struct {
	Method  string            `yaml:"method,omitempty" json:"method,omitempty" jsonschema:"description=GET (the default)\\, HEAD\\, POST\\, PUT\\, PATCH\\, DELETE or OPTIONS."`
	URL     string            `yaml:"url" json:"url" jsonschema:"required,description=The http:// or https:// address to call; query values go under query."`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty" jsonschema:"description=Request headers; write tokens as secret references such as Bearer {{CRM_TOKEN}}."`
	Query   map[string]string `yaml:"query,omitempty" json:"query,omitempty" jsonschema:"description=Query parameters added to the URL\\, escaped."`
	JSON    any               `yaml:"json,omitempty" json:"json,omitempty" jsonschema:"description=Body sent as JSON (Content-Type application/json): any YAML value; its strings are templates. One of json\\, body and form."`
	Body    string            `yaml:"body,omitempty" json:"body,omitempty" jsonschema:"description=Body sent as it is (Content-Type text/plain unless headers set one). One of json\\, body and form."`
	Form    map[string]string `yaml:"form,omitempty" json:"form,omitempty" jsonschema:"description=Body sent as a form (application/x-www-form-urlencoded). One of json\\, body and form."`
	Timeout Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"description=Bound on one request\\, answer included (default 30s); a timeout may be retried."`
	FailOn  *[]string         `yaml:"fail_on,omitempty" json:"fail_on,omitempty" template:"-" jsonschema:"description=Statuses that fail the step: >=400 (the default)\\, <500\\, 404\\, 4xx …; [] never fails on a status."`
	MaxBody ByteSize          `yaml:"max_body,omitempty" json:"max_body,omitempty" jsonschema:"description=Most of the response body kept (default 1MiB); the rest is cut and body_truncated is true."`
}

// HTTPMethods are the methods an http step may send.
var HTTPMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// HTTP step defaults.
const (
	DefaultHTTPMethod  = "GET"
	DefaultHTTPTimeout = Duration(30 * time.Second)
	DefaultHTTPMaxBody = ByteSize(1 << 20)
)

// DefaultHTTPFailOn is the fail_on of an http step that sets none.
var DefaultHTTPFailOn = []string{">=400"}

// StatusRule is one entry of fail_on: a status, a class (4xx) or a
// comparison (>=400, <500).
type StatusRule struct {
	op     string // "=", ">=", ">", "<=", "<"; "=" with a class
	status int
	class  bool // status is a class: 4 for 4xx
}

// ParseStatusRule reads one fail_on entry: "404", "4xx", ">=400", ">399",
// "<500" or "<=499".
func ParseStatusRule(s string) (StatusRule, error) {
	t := strings.TrimSpace(s)
	if len(t) == 3 && strings.EqualFold(t[1:], "xx") && t[0] >= '1' && t[0] <= '5' {
		return StatusRule{op: "=", status: int(t[0] - '0'), class: true}, nil
	}
	op := "="
	for _, o := range []string{">=", "<=", "==", ">", "<", "="} {
		if rest, ok := strings.CutPrefix(t, o); ok {
			op, t = o, strings.TrimSpace(rest)
			break
		}
	}
	if op == "==" {
		op = "="
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 100 || n > 599 || len(t) != 3 {
		return StatusRule{}, fmt.Errorf("%q is not a status rule: write a status (404), a class (4xx) or a comparison (>=400, <500) of statuses from 100 to 599", s)
	}
	return StatusRule{op: op, status: n}, nil
}

// Match reports whether status meets the rule.
func (r StatusRule) Match(status int) bool {
	if r.class {
		return status/100 == r.status
	}
	switch r.op {
	case ">=":
		return status >= r.status
	case ">":
		return status > r.status
	case "<=":
		return status <= r.status
	case "<":
		return status < r.status
	}
	return status == r.status
}

// CheckHTTPURL parses the URL of an http step: http or https, with a host.
func CheckHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %w", err)
	}
	if err := checkHTTPScheme(u.Scheme); err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("has no host: write it as %s://host/path", strings.ToLower(u.Scheme))
	}
	return u, nil
}

// CheckHTTPURLPrefix checks what can be checked of a URL with templates:
// the scheme, when the text before its first {{ names one.
func CheckHTTPURLPrefix(raw string) error {
	prefix, _, _ := strings.Cut(strings.TrimSpace(raw), "{{")
	scheme, _, ok := strings.Cut(prefix, "://")
	if !ok {
		return nil
	}
	return checkHTTPScheme(scheme)
}

func checkHTTPScheme(scheme string) error {
	switch strings.ToLower(scheme) {
	case "http", "https":
		return nil
	case "":
		return errors.New("has no scheme: write the whole address, such as https://api.example.com/tickets")
	}
	return fmt.Errorf("has scheme %q: only http:// and https:// are supported", scheme)
}

// CheckHTTPHeader checks a request header: a name of token characters and
// a value without line breaks or NUL, which could smuggle other headers.
func CheckHTTPHeader(name, value string) error {
	if name == "" {
		return errors.New("a header name must not be empty")
	}
	for i := range len(name) {
		if !isTokenByte(name[i]) {
			return fmt.Errorf("header name %q holds %q: use letters, digits and - (such as X-Request-Id)", name, name[i])
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %s: %w: a line break or NUL in the value would add a header of its own", name, ErrUnsafeValue)
	}
	return nil
}

// isTokenByte reports whether c may appear in an HTTP token (RFC 9110 §5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
