package vault

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	p, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		ref  string
		want string // empty when ref is valid
	}{
		{ref: "kv/data/slack#bot_token"},
		{ref: "secret/data/team/ci#token"},
		{ref: "team/kv/data/ci#token"},
		{ref: "kv/data/a/data/b#k"},
		{ref: "", want: "vault reference is empty; write <mount>/data/<path>#<key>, such as kv/data/slack#bot_token"},
		{ref: "kv/data/slack", want: `vault reference "kv/data/slack" names no key; write <mount>/data/<path>#<key>`},
		{ref: "kv/data/slack#", want: `vault reference "kv/data/slack#" names no key`},
		{ref: "kv/slack#x", want: `vault reference "kv/slack#x" must be <mount>/data/<path>#<key>, such as kv/data/slack#bot_token (did you mean kv/data/slack#x?)`},
		{ref: "slack#x", want: `vault reference "slack#x" must be <mount>/data/<path>#<key>, such as kv/data/slack#bot_token`},
		{ref: "/data/slack#x", want: `vault reference "/data/slack#x" names no mount before /data/`},
		{ref: "kv/data/#x", want: `vault reference "kv/data/#x" names no secret after /data/`},
		{ref: "kv/data/team/#x", want: `vault reference "kv/data/team/#x" names no secret after /data/`},
	}
	for _, tt := range tests {
		err := p.Validate(tt.ref)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want nil", tt.ref, err)
		case tt.want != "" && err == nil:
			t.Errorf("Validate(%q) = nil, want %q", tt.ref, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("Validate(%q) = %q, want %q", tt.ref, err, tt.want)
		}
	}
}
