// Package mailtest gives tests an IMAP server and an SMTP server of their
// own on the loopback interface, speaking the real protocols
// (go-imap's in-memory server, go-smtp), for the email trigger and step.
package mailtest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// IMAP is an IMAP server with one account, stopped when the test ends.
type IMAP struct {
	Port     int
	account  string
	password string
}

// StartIMAP starts an IMAP server with the account and its mailboxes
// (INBOX is always there).
func StartIMAP(t testing.TB, account, password string, mailboxes ...string) *IMAP {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(account, password)
	for _, m := range append([]string{"INBOX"}, mailboxes...) {
		if err := user.Create(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &IMAP{Port: ln.Addr().(*net.TCPAddr).Port, account: account, password: password}
}

// Client logs in to the server; the test closes it.
func (s *IMAP) Client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure("127.0.0.1:"+strconv.Itoa(s.Port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(s.account, s.password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Deliver appends a raw RFC 5322 message to a mailbox, as delivery does.
func (s *IMAP) Deliver(t testing.TB, mailbox, raw string) {
	t.Helper()
	c := s.Client(t)
	defer c.Close()
	cmd := c.Append(mailbox, int64(len(raw)), nil)
	if _, err := io.WriteString(cmd, raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Outbox is an SMTP server that takes mail from one account (AUTH PLAIN)
// and keeps what it was given, or refuses it as Refuse says.
type Outbox struct {
	Port     int
	account  string
	password string

	mu      sync.Mutex
	sent    []Mail
	logins  []string
	rcptErr error // answers RCPT when set
	dataErr error // answers DATA when set
}

// Mail is one message an Outbox took: its envelope and its data.
type Mail struct {
	From string
	To   []string
	Data []byte
}

// StartSMTP starts an SMTP server for the account.
func StartSMTP(t testing.TB, account, password string) *Outbox {
	t.Helper()
	o := &Outbox{account: account, password: password}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{o: o}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.Port = ln.Addr().(*net.TCPAddr).Port
	return o
}

// Refuse makes the server answer RCPT with rcpt and DATA with data (an
// *smtp.SMTPError); nil takes them again.
func (o *Outbox) Refuse(rcpt, data error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rcptErr, o.dataErr = rcpt, data
}

// Logins returns the usernames that logged in, one per session.
func (o *Outbox) Logins() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.logins...)
}

func (o *Outbox) refusal(data bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if data {
		return o.dataErr
	}
	return o.rcptErr
}

// Messages returns what the server took so far.
func (o *Outbox) Messages() []Mail {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Mail(nil), o.sent...)
}

type session struct {
	o      *Outbox
	authed bool
	mail   Mail
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.o.account || pass != s.o.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted"}
		}
		s.authed = true
		s.o.mu.Lock()
		s.o.logins = append(s.o.logins, user)
		s.o.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.mail = Mail{From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.o.refusal(false); err != nil {
		return err
	}
	s.mail.To = append(s.mail.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.o.refusal(true); err != nil {
		return err
	}
	s.mail.Data = data
	s.o.mu.Lock()
	s.o.sent = append(s.o.sent, s.mail)
	s.o.mu.Unlock()
	return nil
}

func (s *session) Reset() { s.mail = Mail{} }

func (s *session) Logout() error { return nil }
