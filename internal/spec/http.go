package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// httpBodies are the keys of an http action that set the request body.
var httpBodies = []string{"json", "body", "form"}

// http checks an http: action: a url that is http:// or https:// (as far
// as its templates let it be checked), a known method, at most one body,
// fail_on entries that parse, headers that cannot smuggle others, and a
// positive timeout and max_body. Its templates are checked with the others.
func (v *validator) http(p string, a *routine.HTTPAction) {
	switch raw := strings.TrimSpace(a.URL); {
	case raw == "" && v.given(p+".url"):
		v.errorf(p+".url", "%s.url is empty: write the address to call, such as https://api.example.com/tickets", human(p))
	case raw == "":
		v.errorf(p, "%s needs url: the address to call, such as https://api.example.com/tickets", human(p))
	case strings.Contains(raw, "{{"):
		if err := routine.CheckHTTPURLPrefix(raw); err != nil {
			v.errorf(p+".url", "%s.url %v", human(p), err)
		}
	default:
		if _, err := routine.CheckHTTPURL(raw); err != nil {
			v.errorf(p+".url", "%s.url %v", human(p), err)
		}
	}
	if m := strings.TrimSpace(a.Method); v.given(p+".method") && !strings.Contains(m, "{{") && !slices.Contains(routine.HTTPMethods, strings.ToUpper(m)) {
		v.errorf(p+".method", "%s.method must be one of %s, got %q%s", human(p), strings.Join(routine.HTTPMethods, ", "), a.Method, suggest.DidYouMean(strings.ToUpper(m), routine.HTTPMethods))
	}
	var bodies []string
	for _, k := range httpBodies {
		if v.given(p + "." + k) {
			bodies = append(bodies, k)
		}
	}
	if len(bodies) > 1 {
		v.errorf(p, "%s has %s, but a request has one body: keep one of json, body and form", human(p), strings.Join(bodies, " and "))
	}
	for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
		value := a.Headers[name]
		if strings.Contains(value, "{{") {
			value = "" // checked once rendered
		}
		if err := routine.CheckHTTPHeader(name, value); err != nil {
			v.keyErrorf(p+".headers."+name, "%s.headers: %v", human(p), err)
		}
	}
	if a.FailOn != nil {
		for i, e := range *a.FailOn {
			if _, err := routine.ParseStatusRule(e); err != nil {
				ep := fmt.Sprintf("%s.fail_on[%d]", p, i)
				v.errorf(ep, "%s: %v", human(ep), err)
			}
		}
	}
	v.positive(p+".timeout", a.Timeout)
	if v.given(p+".max_body") && a.MaxBody == 0 {
		v.errorf(p+".max_body", "%s.max_body must be more than 0", human(p))
	}
}
