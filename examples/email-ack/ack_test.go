// Package emailack is the example of docs/connectors/email.md: support mail
// acknowledged with a threaded reply. Its test runs the daemon against an
// IMAP and an SMTP server of its own, on the loopback interface.
package emailack

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/routines-dev/routines/internal/cli/clitest"
)

const (
	account      = "support@example.com"
	imapPassword = "imap-secret-1"
	smtpPassword = "smtp-secret-2"
)

func TestFiveMailsFiveAcks(t *testing.T) {
	imapPort := startIMAP(t)
	outbox := startSMTP(t)

	dir := clitest.CopyProject(t, ".")
	path := filepath.Join(dir, "routine.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(data), "port: 1143", "port: "+strconv.Itoa(imapPort), 1)
	yaml = strings.Replace(yaml, "port: 1025", "port: "+strconv.Itoa(outbox.port), 1)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAP_PASSWORD", imapPassword)
	t.Setenv("SMTP_PASSWORD", smtpPassword)

	_, out := clitest.Serve(t, dir)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), `msg="email trigger watching"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the email trigger did not start:\n%s", out.String())
		}
	}

	c := imapClient(t, imapPort)
	defer c.Close()
	for i := 1; i <= 5; i++ {
		msg := fmt.Sprintf("From: Customer %d <customer%d@example.org>\r\nTo: %s\r\nSubject: Order %d is late\r\n"+
			"Message-ID: <order-%d@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWhere is my order %d?\r\n", i, i, account, i, i, i)
		cmd := c.Append("support", int64(len(msg)), nil)
		if _, err := io.WriteString(cmd, msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	for deadline := time.Now().Add(15 * time.Second); len(outbox.messages()) < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d acks sent, want 5:\n%s", len(outbox.messages()), out.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	sent := outbox.messages()
	if len(sent) != 5 {
		t.Fatalf("%d acks sent, want 5", len(sent))
	}
	seen := map[string]bool{}
	for _, m := range sent {
		mr, err := gomail.CreateReader(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := mr.Header.Subject()
		replyTo, _ := mr.Header.MsgIDList("In-Reply-To")
		body, _ := io.ReadAll(mustPart(t, mr).Body)
		var n int
		if _, err := fmt.Sscanf(subject, "Re: Order %d is late", &n); err != nil {
			t.Fatalf("subject %q", subject)
		}
		if seen[subject] {
			t.Fatalf("two acks of %q", subject)
		}
		seen[subject] = true
		if want := fmt.Sprintf("customer%d@example.org", n); len(m.to) != 1 || m.to[0] != want || m.from != account {
			t.Errorf("ack %d: envelope from %s to %v, want %s", n, m.from, m.to, want)
		}
		if len(replyTo) != 1 || replyTo[0] != fmt.Sprintf("order-%d@example.org", n) {
			t.Errorf("ack %d: In-Reply-To %v", n, replyTo)
		}
		if want := fmt.Sprintf("Hello Customer %d,\r\n\r\nwe received your message \"Order %d is late\"", n, n); !strings.HasPrefix(string(body), want) {
			t.Errorf("ack %d: body %q, want it to start with %q", n, body, want)
		}
	}
	if n := strings.Count(out.String(), `msg="run queued"`); n != 5 {
		t.Errorf("%d runs queued, want 5:\n%s", n, out.String())
	}
	for _, secret := range []string{imapPassword, smtpPassword} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the daemon's output shows a password:\n%s", out.String())
		}
	}
	// mark: seen flagged each message once its run was queued.
	if _, err := c.Select("support", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	unseen, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || len(unseen.AllUIDs()) != 0 {
		t.Errorf("unseen messages %v (%v), want none", unseen, err)
	}
}

func mustPart(t *testing.T, mr *gomail.Reader) *gomail.Part {
	t.Helper()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startIMAP starts an IMAP server with the account and its support
// mailbox, and returns its port.
func startIMAP(t *testing.T) int {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(account, imapPassword)
	for _, m := range []string{"INBOX", "support"} {
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
	return ln.Addr().(*net.TCPAddr).Port
}

func imapClient(t *testing.T, port int) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure("127.0.0.1:"+strconv.Itoa(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(account, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// outbox is an SMTP server that takes mail from the account.
type outbox struct {
	port int
	mu   sync.Mutex
	sent []sentMail
}

type sentMail struct {
	from string
	to   []string
	data []byte
}

func (o *outbox) messages() []sentMail {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]sentMail(nil), o.sent...)
}

func startSMTP(t *testing.T) *outbox {
	t.Helper()
	o := &outbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{o: o}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.port = ln.Addr().(*net.TCPAddr).Port
	return o
}

type smtpSession struct {
	o      *outbox
	authed bool
	mail   sentMail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != account || pass != smtpPassword {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.mail = sentMail{from: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mail.to = append(s.mail.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mail.data = data
	s.o.mu.Lock()
	s.o.sent = append(s.o.sent, s.mail)
	s.o.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.mail = sentMail{} }
func (s *smtpSession) Logout() error { return nil }
