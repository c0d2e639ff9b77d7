package vault

import (
	"encoding/json"
	"fmt"
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
	return secrets.StringField(data, r.key, r.apiPath())
}
