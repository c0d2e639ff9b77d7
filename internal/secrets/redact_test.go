package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

// shows returns the first run of 4 characters of any of forms that s
// still holds, or "".
func shows(s string, forms ...string) string {
	for _, f := range forms {
		for i := 0; i+4 <= len(f); i++ {
			if strings.Contains(s, f[i:i+4]) {
				return f[i : i+4]
			}
		}
	}
	return ""
}

// base64Cores are the characters of the base64 of v that depend on v alone,
// at each of the three alignments, in both alphabets.
func base64Cores(v string) []string {
	var cores []string
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := range 3 {
			e := enc.EncodeToString(append(make([]byte, k), v...))
			cores = append(cores, e[(8*k+5)/6:8*(k+len(v))/6])
		}
	}
	return cores
}

// wrap cuts s into lines of width characters, ending each with eol.
func wrap(s string, width int, eol string) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + eol)
		s = s[width:]
	}
	b.WriteString(s + eol)
	return b.String()
}

func TestEscapeRedactBase64Wrapped(t *testing.T) {
	t.Parallel()
	short := "s3cr3t/key+value=="
	var long string // wraps over several lines; no part of it repeats
	for i := range 30 {
		long += fmt.Sprint(i * i * 7919 % 1000)
	}
	for _, secret := range []string{short, long} {
		r := secrets.NewRedactor([]string{secret})
		cores := base64Cores(secret)
		// Every offset of the value within the text: the 3 alignments and
		// every place a break falls within the encoding.
		for pad := range 80 {
			plain := strings.Repeat("x", pad) + secret + "tail"
			for _, width := range []int{76, 64} { // base64's default, PEM's
				for _, eol := range []string{"\n", "\r\n"} {
					for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
						text := wrap(enc.EncodeToString([]byte(plain)), width, eol)
						// The log redacts line by line; an output value whole.
						var lines []string
						for _, line := range strings.Split(text, "\n") {
							lines = append(lines, r.Redact(strings.TrimSuffix(line, "\r")))
						}
						for _, got := range []string{strings.Join(lines, "\n"), r.Redact(text)} {
							for _, line := range strings.Split(got, "\n") {
								if run := shows(line, cores...); run != "" {
									t.Fatalf("secret of %d bytes at offset %d, wrapped at %d (%q): %q shows in %q", len(secret), pad, width, eol, run, line)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestEscapeRedactHex(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t/key+value=="
	r := secrets.NewRedactor([]string{secret})
	h := hex.EncodeToString([]byte(secret))
	for _, form := range []string{h, strings.ToUpper(h)} {
		for _, in := range []string{form, "digest " + form + " end", "00ff" + form + "ab", wrap("0a0b"+form, 60, "\n")} { // xxd -p wraps at 60
			got := r.Redact(in)
			for _, line := range strings.Split(got, "\n") {
				if run := shows(line, h, strings.ToUpper(h)); run != "" {
					t.Errorf("Redact(%q) = %q: %q shows", in, got, run)
				}
			}
		}
	}
}

func TestEscapeRedactPercentEncoded(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t/key+value=="
	r := secrets.NewRedactor([]string{secret})
	full := func(v string, hexCase func(i int, s string) string) string {
		var b strings.Builder
		for i := range len(v) {
			b.WriteString("%" + hexCase(i, fmt.Sprintf("%02x", v[i])))
		}
		return b.String()
	}
	for name, hexCase := range map[string]func(int, string) string{
		"upper": func(_ int, s string) string { return strings.ToUpper(s) },
		"lower": func(_ int, s string) string { return s },
		"mixed": func(i int, s string) string {
			if i%2 == 0 {
				return strings.ToUpper(s[:1]) + s[1:]
			}
			return s[:1] + strings.ToUpper(s[1:])
		},
	} {
		enc := full(secret, hexCase)
		for _, in := range []string{enc, "GET /?t=" + enc + "&x=1", full("ab", hexCase) + enc + full("cd", hexCase)} {
			got := r.Redact(in)
			if strings.Contains(got, enc[:12]) || strings.Contains(got, enc[len(enc)-12:]) || !strings.Contains(got, secrets.Mask) {
				t.Errorf("%s: Redact(%q) = %q: the encoding shows", name, in, got)
			}
		}
	}
	// Percent runs that hold no secret pass unchanged.
	if in := "100% done, %41%42%43%44 and %zz"; r.Redact(in) != in {
		t.Errorf("clean text changed: %q", r.Redact(in))
	}
}

func TestEscapeRedactJSONEscaped(t *testing.T) {
	t.Parallel()
	secret := "p\"a\\s/s<&>\n\x01é😀-tail"
	r := secrets.NewRedactor([]string{secret})
	goJSON, _ := json.Marshal(secret)
	var noHTML bytes.Buffer
	enc := json.NewEncoder(&noHTML)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]string{"k": secret})
	// A value whose only special characters are not ASCII.
	if got := secrets.NewRedactor([]string{"wörd-secret"}).Redact(`{"k":"w\u00f6rd-secret"}`); got != `{"k":"***"}` {
		t.Errorf("ASCII-only JSON of a non-ASCII value: %q", got)
	}
	for _, in := range []string{
		string(goJSON),
		noHTML.String(),
		`{"token":"p\"a\\s\/s<&>\n\u0001\u00e9\ud83d\ude00-tail"}`, // PHP json_encode
		`{"token": "p\"a\\s/s<&>\n\u0001\u00e9\ud83d\ude00-tail"}`, // Python json.dumps
		`{"token": "p\"a\\s/s<&>\n\u0001\u00E9\uD83D\uDE00-tail"}`, // upper-case hex
	} {
		got := r.Redact(in)
		if strings.Contains(got, `s<&>`) || strings.Contains(got, `\u003c&`) || strings.Contains(got, "tail") || !strings.Contains(got, secrets.Mask) {
			t.Errorf("Redact(%q) = %q: the value shows", in, got)
		}
	}
}
