package awssm

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
		{ref: "prod/slack"},
		{ref: "prod/db#password"},
		{ref: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"},
		{ref: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf#password"},
		{ref: "", want: "aws reference is empty; write <secret-id>[#<json-key>], such as prod/db#password"},
		{ref: "prod/db #password", want: `aws reference "prod/db #password" contains whitespace`},
		{ref: "prod/db\t", want: `contains whitespace`},
		{ref: "#password", want: `aws reference "#password" names no secret before #`},
		{ref: "prod/db#", want: `aws reference "prod/db#" has an empty key after #; write prod/db#<json-key>, or prod/db for the whole value`},
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
