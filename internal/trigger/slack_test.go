package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"
)

// The published Slack vector: its timestamp is from 2018, so the test
// puts the clock there.
func TestVerifySlackVector(t *testing.T) {
	t.Parallel()
	all := vectors(t)
	secret := vector(t, all, "Slack", "signing secret")
	ts := vector(t, all, "Slack", "timestamp")
	body := []byte(vector(t, all, "Slack", "body"))
	sig := vector(t, all, "Slack", "expected header")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	then := time.Unix(sec, 0).Add(30 * time.Second)
	if err := VerifySlack(secret, ts, body, sig, then); err != nil {
		t.Fatalf("vector: %v", err)
	}
	// Today the same request is a replay.
	if err := VerifySlack(secret, ts, body, sig, time.Now()); !errors.Is(err, ErrStaleRequest) {
		t.Fatalf("vector now: want ErrStaleRequest, got %v", err)
	}
	// One changed byte of the body, the timestamp or the secret breaks it.
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-1] ^= 1
	if err := VerifySlack(secret, ts, tampered, sig, then); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := VerifySlack(secret, strconv.FormatInt(sec+1, 10), body, sig, then); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other timestamp: %v", err)
	}
	if err := VerifySlack(secret+"x", ts, body, sig, then); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other secret: %v", err)
	}
}

func slackSign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySlack(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := []byte("command=%2Ftriage&text=printer+on+fire")
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	cases := []struct {
		name      string
		ts, sig   string
		want      error
		signAgain bool
	}{
		{name: "valid", ts: at(0), signAgain: true},
		{name: "4m59s old", ts: at(-299 * time.Second), signAgain: true},
		{name: "4m59s ahead", ts: at(299 * time.Second), signAgain: true},
		{name: "stale", ts: at(-301 * time.Second), signAgain: true, want: ErrStaleRequest},
		{name: "future", ts: at(301 * time.Second), signAgain: true, want: ErrStaleRequest},
		{name: "far future", ts: "99999999999999", signAgain: true, want: ErrStaleRequest},
		{name: "wrong signature", ts: at(0), sig: slackSign("other", at(0), body), want: ErrBadSignature},
		{name: "no v0", ts: at(0), sig: slackSign("s3cret", at(0), body)[3:], want: ErrBadSignature},
		{name: "not hex", ts: at(0), sig: "v0=zz", want: ErrBadSignature},
		{name: "timestamp not a number", ts: "yesterday", sig: "v0=00", want: ErrBadSignature},
		{name: "no signature", ts: at(0), sig: "", want: ErrNoSignature},
		{name: "no timestamp", ts: "", sig: slackSign("s3cret", "", body), want: ErrNoSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sig := c.sig
			if c.signAgain {
				sig = slackSign("s3cret", c.ts, body)
			}
			err := VerifySlack("s3cret", c.ts, body, sig, now)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

// FuzzVerifySlack: any request verifies exactly when it carries its own
// signature, and nothing panics.
func FuzzVerifySlack(f *testing.F) {
	f.Add("s3cret", []byte("command=%2Ftriage&text=x"), "v0=00", int64(0))
	f.Add("", []byte{}, "", int64(-400))
	f.Add("k", []byte("\x00\xff"), "v0="+hex.EncodeToString(make([]byte, 32)), int64(299))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, secret string, body []byte, sig string, skew int64) {
		ts := strconv.FormatInt(now.Unix()+skew, 10)
		_ = VerifySlack(secret, ts, body, sig, now)
		err := VerifySlack(secret, ts, body, slackSign(secret, ts, body), now)
		inWindow := skew >= -300 && skew <= 300
		if inWindow != (err == nil) {
			t.Fatalf("skew %d: %v", skew, err)
		}
	})
}
