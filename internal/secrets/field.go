package secrets

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// StringField returns the string stored under key in a secret's JSON
// object (a Vault KV secret's data, an AWS secret's JSON value); where
// names the secret in errors. A missing key wraps ErrNotFound and lists
// the keys there are, to show a typo; a value that is not a string is
// named by its JSON type. No error quotes a value.
func StringField(object map[string]json.RawMessage, key, where string) (string, error) {
	raw, ok := object[key]
	if !ok {
		keys := "none"
		if len(object) > 0 {
			keys = strings.Join(slices.Sorted(maps.Keys(object)), ", ")
		}
		return "", fmt.Errorf("no key %q in %s (keys: %s): %w", key, where, keys, ErrNotFound)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("key %q in %s holds a JSON %s, not a string", key, where, jsonType(raw))
	}
	return s, nil
}

// jsonType names the type of a JSON value from its first byte.
func jsonType(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
