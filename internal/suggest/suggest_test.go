package suggest

import "testing"

func TestClosest(t *testing.T) {
	t.Parallel()
	keys := []string{"name", "steps", "needs", "timeout", "triggers", "on_failure", "env"}
	tests := []struct{ in, want string }{
		{"stpes", "steps"},
		{"nedds", "needs"},
		{"timout", "timeout"},
		{"Steps", "steps"},
		{"trigger", "triggers"},
		{"on_fail", "on_failure"},
		{"evn", "env"},
		{"xyz", ""},
		{"completely-different", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.in, keys); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := DidYouMean("stpes", keys); got != `; did you mean "steps"?` {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := DidYouMean("zzz", keys); got != "" {
		t.Errorf("DidYouMean = %q", got)
	}
}

func TestTypo(t *testing.T) {
	t.Parallel()
	names := []string{"API_TOKEN", "AWS_ACCESS_KEY", "SMTP_PASSWORD", "REGION"}
	for _, tt := range []struct{ in, want string }{
		{"API_TOKN", "API_TOKEN"},
		{"API_TOKNE", "API_TOKEN"},
		{"REGOIN", "REGION"},
		{"API_TOKEN", ""}, // itself is no typo
		{"AWS_SECRET_KEY", ""},
		{"IMAP_PASSWORD", ""},
		{"API", ""},
	} {
		if got := Typo(tt.in, names); got != tt.want {
			t.Errorf("Typo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"ab", "ba", 1}, {"kitten", "sitting", 3}, {"steps", "stpes", 1}} {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
