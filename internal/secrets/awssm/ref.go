package awssm

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/routines-dev/routines/internal/secrets"
)

const refSyntax = "<secret-id>[#<json-key>], such as prod/db#password"

// ref is a parsed reference: a secret's name or ARN, and optionally a key
// of the JSON object the secret holds.
type ref struct {
	id, key string
}

// parseRef splits "<secret-id>[#<json-key>]". Secret names and ARNs cannot
// hold '#', so the first one starts the key.
func parseRef(s string) (ref, error) {
	if s == "" {
		return ref{}, fmt.Errorf("aws reference is empty; write %s", refSyntax)
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return ref{}, fmt.Errorf("aws reference %q contains whitespace; write %s", s, refSyntax)
	}
	id, key, found := strings.Cut(s, "#")
	if id == "" {
		return ref{}, fmt.Errorf("aws reference %q names no secret before #; write %s", s, refSyntax)
	}
	if found && key == "" {
		return ref{}, fmt.Errorf("aws reference %q has an empty key after #; write %s#<json-key>, or %s for the whole value", s, id, id)
	}
	return ref{id: id, key: key}, nil
}

// pick returns the string stored under r.key in the JSON object value.
func (r ref) pick(value string) (string, error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal([]byte(value), &object); err != nil || object == nil {
		// The decoder's message is left out: it can quote the value.
		return "", fmt.Errorf("secret %s is not a JSON object, so #%s selects nothing; drop #%s to use the whole value", r.id, r.key, r.key)
	}
	return secrets.StringField(object, r.key, "secret "+r.id)
}
