package template

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestURLRender(t *testing.T) {
	t.Parallel()
	c := &Context{
		Env:   map[string]string{"BASE": "https://crm.example.com/api", "TENANT": "acme"},
		Input: map[string]string{"id": "../admin?x=1#f", "dots": "..", "q": "a&b=c#d e", "full": "https://other.example.com/p?q=1"},
	}
	tests := []struct{ in, want string }{
		{"https://crm.example.com/tickets", "https://crm.example.com/tickets"},
		{"{{ env.BASE }}/tickets/{{ input.id }}", "https://crm.example.com/api/tickets/..%2Fadmin%3Fx=1%23f"},
		{"{{ env.BASE }}/t/{{ input.dots }}/x", "https://crm.example.com/api/t/%2E%2E/x"},
		{"https://x.example.com/search?q={{ input.q }}&n=1", "https://x.example.com/search?q=a%26b%3Dc%23d+e&n=1"},
		{"https://{{ env.TENANT }}.example.com/v1", "https://acme.example.com/v1"},
		{"https://x.example.com/p#{{ input.id }}", "https://x.example.com/p#..%2Fadmin%3Fx=1%23f"},
		{"{{ input.full }}", "https://other.example.com/p?q=1"},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", tt.in, err)
		}
		got, err := u.Render(c)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if _, err := url.Parse(got); err != nil {
			t.Errorf("%s: %q does not parse: %v", tt.in, got, err)
		}
	}
}

func TestURLRefusesValuesThatMoveTheHost(t *testing.T) {
	t.Parallel()
	u, err := ParseURL("https://{{ input.tenant }}.example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"evil.com/", "evil.com#", "evil.com?", "a@evil.com", "evil.com:80", "x y"} {
		_, err := u.Render(&Context{Input: map[string]string{"tenant": v}})
		var uv *UnsafeValueError
		if !errors.As(err, &uv) || !strings.Contains(err.Error(), "not a host name") {
			t.Errorf("host value %q: error %v, want an UnsafeValueError", v, err)
		}
	}
	if _, err := ParseURL("http{{ env.S }}://x.example.com"); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("a value in the scheme: %v", err)
	}
}

// TestURLStructuredValues puts navigated values and a whole structured
// output in a url: each stays one path segment or one query value.
func TestURLStructuredValues(t *testing.T) {
	t.Parallel()
	u, err := ParseURL("https://x.example.com/items/{{ steps.api.outputs.json.v }}/notes?all={{ steps.api.outputs.json }}")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../../admin", "a/b?c=d#e", "..", "x\r\nHost: evil", `"quoted" $(id)`} {
		json := map[string]any{"v": p, "n": 1}
		got, err := u.Render(&Context{Steps: map[string]StepContext{"api": {Outputs: routine.Outputs{"json": json}}}})
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := url.Parse(got)
		if err != nil {
			t.Fatalf("%q does not parse: %v", got, err)
		}
		text, _ := routine.JSONText(json)
		if parsed.Host != "x.example.com" || parsed.Path != "/items/"+p+"/notes" || strings.Count(parsed.EscapedPath(), "/") != 3 || parsed.Query().Get("all") != text {
			t.Errorf("%q gave %s: host %s, path %q, all %q", p, got, parsed.Host, parsed.Path, parsed.Query().Get("all"))
		}
	}
}
