package steps

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// EmailKind sends the message of an email step over SMTP: one connection
// per attempt, STARTTLS or TLS unless the server is on the loopback
// interface, AUTH PLAIN (or LOGIN when that is all the server offers).
type EmailKind struct{}

// Name implements Kind.
func (EmailKind) Name() string { return "email" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (EmailKind) DirFree() {}

var _ stepkind.DirFree = EmailKind{}

// emailDialTimeout bounds the TCP connect, and emailTimeout the whole
// delivery when the step sets no timeout.
const (
	emailDialTimeout = 30 * time.Second
	emailTimeout     = 2 * time.Minute
)

// Execute implements Kind. It outputs message_id (the Message-ID it gave
// the message, with its angle brackets, as event.message_id of an email
// trigger has it) and accepted (the envelope recipients the server took,
// a JSON array).
// Its Result's Usage counts the bytes of the message sent.
func (EmailKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	return metered(ctx, func(ctx context.Context) (*stepkind.Result, error) { return emailExecute(ctx, x) })
}

func emailExecute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Email
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("email: no email action"))
	}
	msg, err := buildEmail(a, time.Now())
	if err != nil {
		return nil, stepkind.FailInput(fmt.Errorf("email: %w", err))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, emailTimeout)
		defer cancel()
	}
	if err := sendEmail(ctx, &a.SMTP, msg); err != nil {
		return nil, err
	}
	fmt.Fprintf(x.Stdout, "sent %q to %s (message id %s)\n", msg.subject, plural(len(msg.rcpts), "recipient"), msg.id)
	return &stepkind.Result{Outputs: routine.Outputs{
		"message_id": msg.id,
		"accepted":   textList(msg.rcpts),
	}}, nil
}

// outgoing is a message ready for SMTP.
type outgoing struct {
	from    string   // the envelope sender: the From address
	rcpts   []string // the envelope recipients: to, cc and bcc, each once
	id      string   // <…@domain>
	subject string
	data    []byte // the RFC 5322 message, CRLF line ends
}

// buildEmail writes the message of a: its headers (Date, Message-ID
// under the From domain, MIME-Version, encoded words for non-ASCII
// text), and a quoted-printable text/plain body, or text/html, or both as
// multipart/alternative.
func buildEmail(a *routine.EmailAction, now time.Time) (*outgoing, error) {
	if err := headerValues(a); err != nil {
		return nil, err
	}
	from, err := mail.ParseAddress(strings.TrimSpace(a.From))
	if err != nil {
		return nil, fmt.Errorf("from %q is not an email address: %w", a.From, err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if domain == "" {
		return nil, fmt.Errorf("from %q has no domain", a.From)
	}
	out := &outgoing{from: from.Address, subject: strings.TrimSpace(a.Subject)}
	seen := map[string]bool{}
	lists := map[string][]*gomail.Address{}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"To", a.To}, {"Cc", a.Cc}, {"Bcc", a.Bcc}} {
		for _, s := range l.addrs {
			if strings.TrimSpace(s) == "" {
				continue // an optional recipient whose template rendered empty
			}
			parsed, err := mail.ParseAddressList(s)
			if err != nil {
				return nil, fmt.Errorf("%s %q is not an email address: %w", strings.ToLower(l.key), s, err)
			}
			for _, p := range parsed {
				lists[l.key] = append(lists[l.key], (*gomail.Address)(p))
				if k := strings.ToLower(p.Address); !seen[k] {
					seen[k] = true
					out.rcpts = append(out.rcpts, p.Address)
				}
			}
		}
	}
	if len(lists["To"]) == 0 {
		return nil, errors.New("to has no recipient")
	}

	var h gomail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*gomail.Address{(*gomail.Address)(from)})
	h.SetAddressList("To", lists["To"])
	h.SetAddressList("Cc", lists["Cc"])
	h.SetSubject(out.subject)
	if err := h.GenerateMessageIDWithHostname(domain); err != nil {
		return nil, fmt.Errorf("message id: %w", err)
	}
	out.id = h.Get("Message-Id")
	if ref := strings.TrimSpace(a.InReplyTo); ref != "" {
		id := strings.TrimSuffix(strings.TrimPrefix(ref, "<"), ">")
		if id == "" || strings.ContainsAny(id, "<> \t") {
			return nil, fmt.Errorf("in_reply_to %q is not a message id such as <abc@example.com>", ref)
		}
		h.SetMsgIDList("In-Reply-To", []string{id})
		h.SetMsgIDList("References", []string{id})
	}

	var buf bytes.Buffer
	text, html := a.Body, a.HTML
	switch {
	case html == "":
		err = writeSingle(&buf, h, "text/plain", text)
	case text == "":
		err = writeSingle(&buf, h, "text/html", html)
	default:
		err = writeAlternative(&buf, h, text, html)
	}
	if err != nil {
		return nil, fmt.Errorf("write the message: %w", err)
	}
	out.data = buf.Bytes()
	return out, nil
}

// headerValues refuses a line break or NUL in the values that become
// headers: a rendered value must not add a header of its own (a Bcc), and
// folding it away silently would send what the routine did not write.
func headerValues(a *routine.EmailAction) error {
	fields := []struct {
		name   string
		values []string
	}{{"from", []string{a.From}}, {"to", a.To}, {"cc", a.Cc}, {"bcc", a.Bcc}, {"subject", []string{a.Subject}}, {"in_reply_to", []string{a.InReplyTo}}}
	for _, f := range fields {
		for _, v := range f.values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("%s %q: %w: a line break or NUL would add a header of its own", f.name, v, routine.ErrUnsafeValue)
			}
		}
	}
	return nil
}

func writeSingle(w io.Writer, h gomail.Header, typ, body string) error {
	h.SetContentType(typ, map[string]string{"charset": "utf-8"})
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	bw, err := gomail.CreateSingleInlineWriter(w, h)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(bw, body); err != nil {
		return err
	}
	return bw.Close()
}

func writeAlternative(w io.Writer, h gomail.Header, text, html string) error {
	mw, err := gomail.CreateInlineWriter(w, h)
	if err != nil {
		return err
	}
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		var ph gomail.InlineHeader
		ph.SetContentType(p.typ, map[string]string{"charset": "utf-8"})
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := mw.CreatePart(ph)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(pw, p.body); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return mw.Close()
}

// sendEmail delivers msg to the server of cfg: connect (TLS from the first
// byte, or STARTTLS), authenticate when a username is given, then MAIL,
// RCPT and DATA.
func sendEmail(ctx context.Context, cfg *routine.MailServer, msg *outgoing) error {
	host := strings.TrimSpace(cfg.Host)
	if host == "" {
		return stepkind.Fail("", false, errors.New("email: smtp.host is empty"))
	}
	mode := cfg.TLSMode()
	port := cfg.Port
	if port == 0 {
		port = map[string]int{routine.MailTLSImplicit: 465, routine.MailTLSStartTLS: 587, routine.MailTLSNone: 25}[mode]
	}
	if mode == routine.MailTLSNone && !routine.IsLoopbackHost(host) {
		return stepkind.Fail("", false, fmt.Errorf("email: smtp.tls none is only allowed for a loopback host (localhost, 127.0.0.1, ::1), not %s: the password and the message would cross the network in clear", host))
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	dialer := &net.Dialer{Timeout: emailDialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return smtpFailure(ctx, "connect to "+addr, err)
	}
	// The SMTP client has no context: cancelling the step closes the
	// connection, which ends whatever command is waiting.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	var c *smtp.Client
	switch mode {
	case routine.MailTLSImplicit:
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return smtpFailure(ctx, "TLS with "+addr, err)
		}
		c = smtp.NewClient(tc)
	case routine.MailTLSStartTLS:
		c, err = smtp.NewClientStartTLS(conn, tlsConfig)
		if err != nil {
			conn.Close()
			return smtpFailure(ctx, "STARTTLS with "+addr, err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	// Hello now, so that a refusing greeting is reported as such.
	if err := c.Hello("localhost"); err != nil {
		return smtpFailure(ctx, "EHLO", err)
	}
	if cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return stepkind.Fail(routine.CodeAuth, false, fmt.Errorf("email: %s offers no AUTH, but smtp.username is set", addr))
		}
		var auth sasl.Client = sasl.NewPlainClient("", cfg.Username, cfg.Password)
		if !c.SupportsAuth(sasl.Plain) && c.SupportsAuth(sasl.Login) {
			auth = sasl.NewLoginClient(cfg.Username, cfg.Password)
		}
		if err := c.Auth(auth); err != nil {
			return smtpFailure(ctx, "log in as "+cfg.Username, err)
		}
	}
	if err := c.SendMail(msg.from, msg.rcpts, &countingBody{
		ReadCloser: io.NopCloser(bytes.NewReader(msg.data)),
		count:      func(n int64) { countSent(ctx, n) },
	}); err != nil {
		return smtpFailure(ctx, "send", err)
	}
	// The message is accepted once DATA is: a failed QUIT loses nothing.
	_ = c.Quit()
	return nil
}

// smtpFailure describes err for the error payload: a refused login (535
// and the other 5.7.x answers to AUTH) is auth and final; any other 4xx is
// temporary, retryable; any other 5xx is a permanent refusal. Both are
// invalid_response, the closest code the payload has for a server that
// answered and said no (http_status is for HTTP). A connection that fails
// or stalls is timeout and retryable; a certificate that does not verify
// is final.
func smtpFailure(ctx context.Context, doing string, err error) error {
	wrapped := fmt.Errorf("email: %s: %w", doing, err)
	var se *smtp.SMTPError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &se):
		switch {
		case se.Code == 535 || se.Code == 534 || se.Code == 530 || (se.Code/100 == 5 && se.EnhancedCode[0] == 5 && se.EnhancedCode[1] == 7 && strings.HasPrefix(doing, "log in")):
			return stepkind.Fail(routine.CodeAuth, false, wrapped)
		case se.Code/100 == 4:
			return stepkind.Fail(routine.CodeInvalidResponse, true, wrapped)
		default:
			return stepkind.Fail(routine.CodeInvalidResponse, false, wrapped)
		}
	case errors.As(err, &certErr):
		return stepkind.Fail("", false, wrapped)
	case ctx.Err() != nil:
		return stepkind.Fail(routine.CodeTimeout, true, fmt.Errorf("email: %s: %w", doing, ctx.Err()))
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return stepkind.Fail(routine.CodeTimeout, true, wrapped)
	}
	return stepkind.Fail("", false, wrapped)
}

var _ stepkind.Kind = EmailKind{}
