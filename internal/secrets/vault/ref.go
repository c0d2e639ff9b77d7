package vault

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/secrets"
)

const refSyntax = "<mount>/data/<path>#<key>, such as kv/data/slack#bot_token"

// ref is a parsed reference: the secret at <mount>/data/<path>, and the key
// within it.
type ref struct {
	mount, path, key string
}

// parseRef splits "<mount>/data/<path>#<key>".
func parseRef(s string) (ref, error) {
	if s == "" {
		return ref{}, fmt.Errorf("vault reference is empty; write %s", refSyntax)
	}
	location, key, found := strings.Cut(s, "#")
	if !found || key == "" {
		return ref{}, fmt.Errorf("vault reference %q names no key; write %s", s, refSyntax)
	}
	mount, path, found := strings.Cut(location, "/data/")
	if !found {
		return ref{}, fmt.Errorf("vault reference %q must be %s%s", s, refSyntax, suggestion(location, key))
	}
	if mount == "" || strings.HasPrefix(mount, "/") {
		return ref{}, fmt.Errorf("vault reference %q names no mount before /data/; write %s", s, refSyntax)
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return ref{}, fmt.Errorf("vault reference %q names no secret after /data/; write %s", s, refSyntax)
	}
	return ref{mount: mount, path: path, key: key}, nil
}

// suggestion proposes the KV v2 form of a reference written as a KV v1
// path or a "vault kv get" path, which lack the /data/ segment.
func suggestion(location, key string) string {
	mount, path, found := strings.Cut(location, "/")
	if !found || mount == "" || path == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s/data/%s#%s?)", mount, path, key)
}

// apiPath is the KV v2 read path, without the /v1/ prefix.
func (r ref) apiPath() string { return r.mount + "/data/" + r.path }

// pick returns the string stored under r.key in a secret's data.
func (r ref) pick(data map[string]json.RawMessage) (string, error) {
	raw, ok := data[r.key]
	if !ok {
		return "", fmt.Errorf("no key %q at %s (keys: %s): %w", r.key, r.apiPath(), keyList(data), secrets.ErrNotFound)
	}
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", fmt.Errorf("key %q at %s holds a JSON %s, not a string", r.key, r.apiPath(), jsonType(raw))
	}
	return value, nil
}

// keyList names a secret's keys, which helps spot a typo; the values are
// never shown.
func keyList(data map[string]json.RawMessage) string {
	if len(data) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
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
