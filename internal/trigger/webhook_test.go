package trigger

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectors reads the published signature vectors of each provider from
// the shared fixtures: "## Provider" sections of "- key: `value`" lines.
func vectors(t testing.TB) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "shared", "fixtures", "signatures.md"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("shared fixtures not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all := map[string]map[string]string{}
	var section map[string]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section = map[string]string{}
			all[strings.Fields(h)[0]] = section
			continue
		}
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "- "), ": `")
		if section != nil && ok && strings.HasPrefix(line, "- ") && strings.HasSuffix(val, "`") {
			section[key] = strings.TrimSuffix(val, "`")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}

func vector(t testing.TB, all map[string]map[string]string, provider, key string) string {
	t.Helper()
	v, ok := all[provider][key]
	if !ok {
		t.Fatalf("fixtures: no %q for %s", key, provider)
	}
	return v
}

func TestVerifyHMACGitHubVector(t *testing.T) {
	t.Parallel()
	all := vectors(t)
	secret := []byte(vector(t, all, "GitHub", "secret"))
	body := []byte(vector(t, all, "GitHub", "payload (raw body)"))
	header := vector(t, all, "GitHub", "expected header")
	if err := VerifyHMAC(secret, body, header); err != nil {
		t.Fatalf("published vector rejected: %v", err)
	}
	if err := VerifyHMAC(secret, body, strings.ToUpper(header[:7])+header[7:]); !errors.Is(err, ErrBadSignature) {
		t.Errorf("prefix is case-sensitive, got %v", err)
	}
	if err := VerifyHMAC(secret, body, "sha256="+strings.ToUpper(header[7:])); err != nil {
		t.Errorf("upper-case hex rejected: %v", err)
	}
	for name, tc := range map[string]struct {
		secret, body, header string
		want                 error
	}{
		"missing":        {string(secret), string(body), "", ErrNoSignature},
		"other secret":   {"It's a secret to everybody", string(body), header, ErrBadSignature},
		"other body":     {string(secret), "Hello, World?", header, ErrBadSignature},
		"sha1":           {string(secret), string(body), "sha1=" + header[7:], ErrBadSignature},
		"no prefix":      {string(secret), string(body), header[7:], ErrBadSignature},
		"truncated":      {string(secret), string(body), header[:len(header)-2], ErrBadSignature},
		"not hex":        {string(secret), string(body), header[:len(header)-1] + "g", ErrBadSignature},
		"trailing space": {string(secret), string(body), header + " ", ErrBadSignature},
	} {
		if err := VerifyHMAC([]byte(tc.secret), []byte(tc.body), tc.header); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// Slack signs "v0:<timestamp>:<body>" with the same HMAC; its vector checks
// the comparison on a long form body.
func TestCheckMACSlackVector(t *testing.T) {
	t.Parallel()
	all := vectors(t)
	secret := []byte(vector(t, all, "Slack", "signing secret"))
	base := "v0:" + vector(t, all, "Slack", "timestamp") + ":" + vector(t, all, "Slack", "body")
	sig, ok := strings.CutPrefix(vector(t, all, "Slack", "expected header"), "v0=")
	if !ok {
		t.Fatal("fixtures: Slack header lacks v0=")
	}
	if err := checkMAC(secret, []byte(base), sig); err != nil {
		t.Fatalf("published vector rejected: %v", err)
	}
	if err := checkMAC(secret, []byte(base+"x"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered body accepted: %v", err)
	}
}

func TestSignatureHeader(t *testing.T) {
	t.Parallel()
	if got := SignatureHeader(""); got != "X-Routines-Signature" {
		t.Errorf("SignatureHeader(\"\") = %s", got)
	}
	if got := SignatureHeader("github"); got != "X-Hub-Signature-256" {
		t.Errorf("SignatureHeader(github) = %s", got)
	}
}

func TestEventFilter(t *testing.T) {
	t.Parallel()
	f := NewEventFilter([]string{"pull_request.opened", "push"})
	for _, tc := range []struct {
		event, body string
		want        bool
	}{
		{"push", `{"ref":"refs/heads/main"}`, true},
		{"push", ``, true},
		{"pull_request", `{"action":"opened","number":1}`, true},
		{"pull_request", ` {"number":1,"action":"opened"}`, true},
		{"pull_request", `{"action":"closed"}`, false},
		{"pull_request", `{}`, false},
		{"pull_request", `not json`, false},
		{"pull_request", `payload=%7B%22action%22%3A%22opened%22%7D`, true},
		{"pull_request", `payload=%7B%22action%22%3A%22closed%22%7D`, false},
		{"pull_request", `{"pull_request":{"action":"opened"}}`, false},
		{"issues", `{"action":"opened"}`, false},
		{"", `{"action":"opened"}`, false},
		{"pull_request.opened", `{}`, false},
	} {
		if got := f.Match(tc.event, []byte(tc.body)); got != tc.want {
			t.Errorf("Match(%q, %s) = %v, want %v", tc.event, tc.body, got, tc.want)
		}
	}
	if !NewEventFilter(nil).Match("anything", nil) {
		t.Error("an empty filter must match every delivery")
	}
}

func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func FuzzVerifyHMAC(f *testing.F) {
	f.Add([]byte("It's a Secret to Everybody"), []byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add([]byte(""), []byte(""), "")
	f.Add([]byte("k"), []byte("{}"), "sha256=")
	f.Add([]byte("k"), []byte("{}"), "sha256=zz")
	f.Add([]byte("k"), []byte("{}"), "sha1=0123")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		err := VerifyHMAC(secret, body, header)
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrNoSignature) {
			t.Fatalf("unexpected error %v", err)
		}
		// Only the one true signature passes, in either case of hex.
		if (err == nil) != strings.EqualFold(header, sign(secret, body)) || (err == nil && !strings.HasPrefix(header, "sha256=")) {
			t.Fatalf("VerifyHMAC(%q, %q, %q) = %v", secret, body, header, err)
		}
		if err := VerifyHMAC(secret, body, sign(secret, body)); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
	})
}
