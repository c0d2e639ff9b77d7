package trigger

import (
	"encoding/json"
	"testing"
)

// FuzzParseMail feeds the mail parser of the email trigger anything: it
// must never panic, and its event must always encode, so malformed mail
// never stops a trigger.
func FuzzParseMail(f *testing.F) {
	for _, seed := range []string{
		"From: a@b.c\r\nSubject: hi\r\n\r\nbody\r\n",
		"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello &amp; <b>bye</b></p>\r\n",
		"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\none\r\n--X\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64\r\n--X",
		"Subject: \xff\xfe\r\n\r\n\x00\x01",
		"",
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, truncated bool) {
		ev := parseMail(raw, truncated)
		if ev == nil {
			t.Fatal("no event")
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("the event does not encode: %v", err)
		}
	})
}
