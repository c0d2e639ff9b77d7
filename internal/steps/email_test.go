package steps

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/routines-dev/routines/internal/mailtest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// smtpBundle is an SMTP server on the loopback interface that records
// what it receives and refuses what the test tells it to.
type smtpBundle struct {
	*mailtest.Outbox
	host string
	port int
}

const (
	smtpUser     = "bot@example.com"
	smtpPassword = "s3cret-pw"
)

func setupSMTP(t *testing.T) *smtpBundle {
	t.Helper()
	o := mailtest.StartSMTP(t, smtpUser, smtpPassword)
	return &smtpBundle{Outbox: o, host: "127.0.0.1", port: o.Port}
}

// action returns an email action addressed to the bundle's server.
func (b *smtpBundle) action() *routine.EmailAction {
	return &routine.EmailAction{
		SMTP:    routine.MailServer{Host: b.host, Port: b.port, TLS: "none", Username: smtpUser, Password: smtpPassword},
		From:    "Support <support@example.com>",
		To:      []string{"alice@example.org"},
		Subject: "Hello",
		Body:    "Hi Alice",
	}
}

// sendTest runs an email step with a.
func sendTest(t *testing.T, a *routine.EmailAction) (routine.Outputs, string, error) {
	t.Helper()
	var stdout strings.Builder
	res, err := EmailKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "ack", Attempt: 1,
		Action: &routine.Action{Email: a},
		Stdout: &stdout,
	})
	if err != nil {
		return nil, stdout.String(), err
	}
	wantShape(t, "email", res.Outputs)
	return res.Outputs, stdout.String(), nil
}

func TestEmailSendsMultipartReply(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	a := b.action()
	a.To = []string{"Alice Ärger <alice@example.org>", ""}
	a.Cc = []string{"carol@example.org, dave@example.org"}
	a.Bcc = []string{"audit@example.com", "ALICE@example.org"}
	a.Subject = "Re: Grüße aus Köln — ticket #42"
	a.Body = "Hallo Alice,\nwir haben Ihre Nachricht erhalten. Ünïcödé ✓\n"
	a.HTML = "<p>Hallo Alice,</p><p>wir haben Ihre Nachricht erhalten.</p>"
	a.InReplyTo = "<orig-123@mail.example.org>"
	out, stdout, err := sendTest(t, a)
	if err != nil {
		t.Fatal(err)
	}
	envs := b.Messages()
	if len(envs) != 1 {
		t.Fatalf("received %d messages, want 1", len(envs))
	}
	env := envs[0]
	if env.From != "support@example.com" {
		t.Errorf("MAIL FROM %q", env.From)
	}
	wantRcpts := []string{"alice@example.org", "carol@example.org", "dave@example.org", "audit@example.com"}
	if strings.Join(env.To, ",") != strings.Join(wantRcpts, ",") {
		t.Errorf("RCPT TO %v, want %v", env.To, wantRcpts)
	}
	logins := b.Logins()
	if len(logins) != 1 || logins[0] != smtpUser {
		t.Errorf("logins %v", logins)
	}
	if accepted, ok := out["accepted"].([]any); !ok || len(accepted) != 4 {
		t.Errorf("accepted %#v", out["accepted"])
	}
	if bytes.Contains(env.Data, []byte("audit@example.com")) {
		t.Errorf("the Bcc recipient is in the message:\n%s", env.Data)
	}
	// Every line of the message is ASCII: the non-ASCII text is encoded.
	for i, c := range env.Data {
		if c > 127 {
			t.Fatalf("byte %d of the message is not ASCII:\n%s", i, env.Data)
		}
	}

	mr, err := gomail.CreateReader(bytes.NewReader(env.Data))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	if subj, err := h.Subject(); err != nil || subj != a.Subject {
		t.Errorf("subject %q (%v), want %q", subj, err, a.Subject)
	}
	if raw := h.Get("Subject"); !strings.Contains(raw, "=?utf-8?") {
		t.Errorf("raw subject %q is not an encoded word", raw)
	}
	from, _ := h.AddressList("From")
	to, _ := h.AddressList("To")
	cc, _ := h.AddressList("Cc")
	if len(from) != 1 || from[0].Name != "Support" || len(to) != 1 || to[0].Name != "Alice Ärger" || len(cc) != 2 {
		t.Errorf("from %v, to %v, cc %v", from, to, cc)
	}
	if h.Get("Mime-Version") != "1.0" || h.Get("Date") == "" {
		t.Errorf("MIME-Version %q, Date %q", h.Get("Mime-Version"), h.Get("Date"))
	}
	id, _ := h.MessageID()
	if !strings.HasSuffix(id, "@example.com") || out["message_id"] != "<"+id+">" {
		t.Errorf("Message-ID %q, output %q", id, out["message_id"])
	}
	for _, key := range []string{"In-Reply-To", "References"} {
		if ids, err := h.MsgIDList(key); err != nil || len(ids) != 1 || ids[0] != "orig-123@mail.example.org" {
			t.Errorf("%s %v (%v)", key, ids, err)
		}
	}
	if mt, _, _ := h.ContentType(); mt != "multipart/alternative" {
		t.Errorf("content type %q", mt)
	}
	var parts []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ih := p.Header.(*gomail.InlineHeader)
		mt, params, _ := ih.ContentType()
		body, _ := io.ReadAll(p.Body)
		parts = append(parts, mt+";"+params["charset"]+";"+ih.Get("Content-Transfer-Encoding"))
		if mt == "text/plain" && string(body) != strings.ReplaceAll(a.Body, "\n", "\r\n") {
			t.Errorf("text body %q, want %q", body, a.Body)
		}
		if mt == "text/html" && string(body) != a.HTML {
			t.Errorf("html body %q", body)
		}
	}
	want := "text/plain;utf-8;quoted-printable text/html;utf-8;quoted-printable"
	if strings.Join(parts, " ") != want {
		t.Errorf("parts %v, want %s", parts, want)
	}
	wantLog := `sent "Re: Grüße aus Köln — ticket #42" to 4 recipients (message id ` + out["message_id"].(string) + ")\n"
	if stdout != wantLog {
		t.Errorf("stdout %q, want %q", stdout, wantLog)
	}
	if strings.Contains(stdout, smtpPassword) || strings.Contains(stdout, "Hallo") {
		t.Errorf("stdout shows the password or the body: %q", stdout)
	}
}

// TestEmailHeadersRefuseLineBreaks: a rendered value with a line break
// would add a header of its own (a Bcc to the attacker); the step fails
// with unsafe_value and sends nothing, rather than folding it silently.
func TestEmailHeadersRefuseLineBreaks(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	for _, set := range []func(a *routine.EmailAction){
		func(a *routine.EmailAction) { a.Subject = "Hello\r\nBcc: victim@example.net" },
		func(a *routine.EmailAction) { a.Subject = "Hello\nBcc: victim@example.net" },
		func(a *routine.EmailAction) { a.To = []string{"alice@example.org\r\nBcc: victim@example.net"} },
		func(a *routine.EmailAction) { a.Cc = []string{"bob@example.org\nX-Evil: 1"} },
		func(a *routine.EmailAction) { a.InReplyTo = "<a@example.org>\r\nBcc: victim@example.net" },
	} {
		a := b.action()
		set(a)
		_, _, err := sendTest(t, a)
		failsWith(t, err, routine.CodeUnsafeValue, false, "unsafe value: a line break or NUL would add a header of its own")
	}
	if n := len(b.Messages()); n != 0 {
		t.Fatalf("%d messages were sent", n)
	}
}

// failsWith checks that err is a steps error of code, retryable as said.
func failsWith(t *testing.T, err error, code string, retryable bool, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("the step succeeded, want an error")
	}
	c, r, _ := stepkind.Describe(err)
	if c != code || r != retryable || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q: code %q retryable %v, want %q %v and %q", err, c, r, code, retryable, want)
	}
	if strings.Contains(err.Error(), smtpPassword) {
		t.Fatalf("the error shows the password: %q", err)
	}
}

func TestEmailAuthFailure(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	a := b.action()
	a.SMTP.Password = "wrong"
	_, _, err := sendTest(t, a)
	failsWith(t, err, routine.CodeAuth, false, "535")
	if len(b.Messages()) != 0 {
		t.Fatal("a message went through without a login")
	}
}

func TestEmailTemporaryFailureIsRetryable(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	b.Refuse(nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"})
	_, _, err := sendTest(t, b.action())
	failsWith(t, err, routine.CodeInvalidResponse, true, "451")
}

func TestEmailPermanentFailure(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	b.Refuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, nil)
	_, _, err := sendTest(t, b.action())
	failsWith(t, err, routine.CodeInvalidResponse, false, "550")
}

func TestEmailConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	a := (&smtpBundle{host: "127.0.0.1", port: port}).action()
	_, _, err = sendTest(t, a)
	failsWith(t, err, routine.CodeTimeout, true, "connect to 127.0.0.1:"+strconv.Itoa(port))
}

func TestEmailRefusesPlainTextOffLoopback(t *testing.T) {
	t.Parallel()
	a := (&smtpBundle{host: "smtp.example.com", port: 25}).action()
	_, _, err := sendTest(t, a)
	failsWith(t, err, "", false, "only allowed for a loopback host")
}

func TestEmailInvalidAddresses(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	for _, tc := range []struct {
		edit func(*routine.EmailAction)
		want string
	}{
		{func(a *routine.EmailAction) { a.From = "not an address" }, "from"},
		{func(a *routine.EmailAction) { a.To = []string{""} }, "to has no recipient"},
		{func(a *routine.EmailAction) { a.To = []string{"alice@"} }, "to \"alice@\""},
		{func(a *routine.EmailAction) { a.InReplyTo = "<a b@c>" }, "in_reply_to"},
	} {
		a := b.action()
		tc.edit(a)
		_, _, err := sendTest(t, a)
		failsWith(t, err, "", false, tc.want)
	}
	if len(b.Messages()) != 0 {
		t.Fatal("an invalid message was sent")
	}
}

func TestEmailUsageCountsTheMessage(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	a := b.action()
	a.Body = strings.Repeat("a line of the body\n", 100)
	res, err := EmailKind{}.Execute(t.Context(), &stepkind.Execution{
		RunID: "01RUN", StepID: "ack", Attempt: 1, Action: &routine.Action{Email: a}, Stdout: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	envs := b.Messages()
	if len(envs) != 1 || res.Usage.BytesSent != int64(len(envs[0].Data)) || res.Usage.BytesReceived != 0 {
		t.Fatalf("usage %+v, want the %d bytes of the message sent", res.Usage, len(envs[0].Data))
	}
}
