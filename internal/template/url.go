package template

import (
	"fmt"
	"net/url"
	"strings"
)

// urlPart is the part of an address a segment of a URL template is in,
// which decides how its value is escaped.
type urlPart uint8

const (
	urlBase     urlPart = iota // the segment the address starts with: as it is
	urlScheme                  // before ://: refused
	urlHost                    // between :// and the path: letters, digits, - and . only
	urlPath                    // one path segment, escaped
	urlQuery                   // a query value, escaped
	urlFragment                // after #, escaped
)

// URL is a url: template in which a value cannot change the parts of the
// address around it: in the path it is exactly one escaped segment (a /,
// ?, # or .. in it is escaped), in the query one escaped value, in the
// host only a name. Only a segment that starts the address is taken as it
// is: it is the base (such as {{ env.CRM_URL }}), chosen by the routine,
// and so is a url that is one {{ }} as a whole.
type URL struct {
	t     *Template
	parts []urlPart // of the {{ }} segments, in order
}

// ParseURL parses a url: template. Errors are *Error located within src.
func ParseURL(src string) (*URL, error) {
	t, err := Parse(src)
	if err != nil {
		return nil, err
	}
	u := &URL{t: t}
	part := urlScheme
	for i := range t.segments {
		s := &t.segments[i]
		if s.expr == nil && !s.named {
			part = urlPartAfter(part, s.text)
			continue
		}
		switch {
		case i == 0:
			u.parts = append(u.parts, urlBase)
			part = urlPath
		case part == urlScheme:
			return nil, &Error{Offset: s.start, Expr: s.source(), Msg: "a {{ }} in the scheme of a url: write http:// or https:// literally, or make the whole url one {{ }}"}
		default:
			u.parts = append(u.parts, part)
		}
	}
	return u, nil
}

// urlPartAfter returns the part the address is in after the literal text.
func urlPartAfter(part urlPart, text string) urlPart {
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case part == urlScheme:
			if strings.HasPrefix(text[i:], "://") {
				part, i = urlHost, i+2
			}
		case c == '#':
			part = urlFragment
		case part == urlFragment:
		case c == '?':
			part = urlQuery
		case c == '/' && part == urlHost:
			part = urlPath
		}
	}
	return part
}

// Refs returns every reference the url makes, as Template.Refs.
func (u *URL) Refs() []Ref { return u.t.refs }

// Render evaluates the url against c, escaping each value for its part.
func (u *URL) Render(c *Context) (string, error) {
	if u.t.segments == nil {
		return u.t.src, nil
	}
	var b strings.Builder
	n := 0
	for i := range u.t.segments {
		s := &u.t.segments[i]
		v, err := s.render(c)
		if err != nil {
			return "", err
		}
		if s.expr == nil && !s.named {
			b.WriteString(v)
			continue
		}
		part := u.parts[n]
		n++
		switch part {
		case urlBase:
			b.WriteString(v)
		case urlHost:
			if strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
				return "", &UnsafeValueError{Segment: s.source(), Msg: fmt.Sprintf("the value %q is not a host name (letters, digits, - and . only), so it could change the address", v)}
			}
			b.WriteString(v)
		case urlPath, urlFragment:
			b.WriteString(escapeSegment(v))
		case urlQuery:
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String(), nil
}

// escapeSegment escapes a value as one path segment: / ? # % and the rest
// that PathEscape escapes, and . or .. as a whole, which a server would
// read as a step up the path.
func escapeSegment(v string) string {
	if v == "." || v == ".." {
		return strings.Repeat("%2E", len(v))
	}
	return url.PathEscape(v)
}

// UnsafeValueError is a rendered value that would change the structure
// of the text it lands in rather than be data within it: a host name that
// is not one, a header value with a line break.
type UnsafeValueError struct {
	Segment string // the {{ }} it came from, or the field
	Msg     string
}

func (e *UnsafeValueError) Error() string { return e.Segment + ": " + e.Msg }
