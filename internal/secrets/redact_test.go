package secrets_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/secrets"
)

func TestRedactForms(t *testing.T) {
	t.Parallel()
	const key = "s3cr3t/key+value=="
	pem := "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----\n"
	r := secrets.NewRedactor([]string{key, "ab", pem, "  padded-value  "})
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + key))
	for _, in := range []string{
		key,
		"token=" + key + ";",
		url.QueryEscape(key),
		url.PathEscape(key),
		base64.StdEncoding.EncodeToString([]byte(key)),
		base64.URLEncoding.EncodeToString([]byte(key)),
		base64.RawStdEncoding.EncodeToString([]byte(key)),
		"Authorization: Basic " + basic, // the value inside a longer base64 text
		base64.StdEncoding.EncodeToString([]byte("xy" + key + "z")),
		"MIIBOgIBAAJBAKj34GkxFhD9", // a line of a multi-line value
		"padded-value",
	} {
		got := r.Redact(in)
		if strings.Contains(got, key) || strings.Contains(got, "MIIBOgIBAAJBAKj34GkxFhD9") || strings.Contains(got, "padded-value") {
			t.Errorf("Redact(%q) = %q: the value shows", in, got)
		}
		if !strings.Contains(got, secrets.Mask) {
			t.Errorf("Redact(%q) = %q, want ***", in, got)
		}
		// No long run of the encoded value survives either.
		for _, enc := range []string{base64.StdEncoding.EncodeToString([]byte(key)), basic} {
			if len(enc) > 8 && strings.Contains(got, enc[2:len(enc)-3]) {
				t.Errorf("Redact(%q) = %q: its encoding shows", in, got)
			}
		}
	}
	// A short value is hidden as it is, but its encodings are not looked
	// for: they would mask ordinary text.
	if got := r.Redact("ab " + base64.StdEncoding.EncodeToString([]byte("ab"))); got != "*** YWI=" {
		t.Errorf("short value: %q", got)
	}
	if got := r.Redact("nothing to hide"); got != "nothing to hide" {
		t.Errorf("clean text changed: %q", got)
	}
	var none *secrets.Redactor
	if got := none.Redact(key); got != key || none.MaxLen() != 0 || secrets.NewRedactor(nil) != nil {
		t.Errorf("nil redactor changed text: %q", got)
	}
	if r.MaxLen() < len(pem) {
		t.Errorf("MaxLen %d, shorter than the longest value %d", r.MaxLen(), len(pem))
	}
}

// A secret that contains another is hidden whole.
func TestRedactLongestFirst(t *testing.T) {
	t.Parallel()
	r := secrets.NewRedactor([]string{"token", "token-with-suffix"})
	if got := r.Redact("a token-with-suffix b"); got != "a *** b" {
		t.Errorf("got %q, want %q", got, "a *** b")
	}
}
