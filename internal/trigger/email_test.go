package trigger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/routines-dev/routines/internal/routine"
)

const (
	imapUser     = "support@example.com"
	imapPassword = "imap-pw"
)

// imapBundle is an IMAP server on the loopback interface with one user
// and the mailboxes INBOX and support, a store of cursors and a sink
// that records firings.
type imapBundle struct {
	user    *imapmemserver.User
	port    int
	cursors *memCursors
	fires   chan Fire
	logs    *syncBuffer
}

func setupIMAP(t *testing.T, idle bool) *imapBundle {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(imapUser, imapPassword)
	for _, m := range []string{"INBOX", "support"} {
		if err := user.Create(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	if !idle {
		port = withoutIdle(t, port)
	}
	return &imapBundle{
		user: user, port: port,
		cursors: &memCursors{values: map[string]string{}},
		fires:   make(chan Fire, 100),
		logs:    &syncBuffer{},
	}
}

// withoutIdle starts a proxy to the IMAP server at port that removes IDLE
// and IMAP4rev2 (which implies it) from what the server says it can do,
// as a server without IDLE would answer, and returns the proxy's port.
func withoutIdle(t *testing.T, port int) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	strip := strings.NewReplacer(" IDLE", "", " IMAP4rev2", "")
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				client.Close()
				continue
			}
			go func() {
				io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer client.Close()
				r := bufio.NewReader(server)
				for {
					line, err := r.ReadString('\n')
					if strings.Contains(line, "CAPABILITY") {
						line = strip.Replace(line)
					}
					if _, werr := io.WriteString(client, line); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// trigger returns an email trigger on the bundle's server.
func (b *imapBundle) trigger() routine.EmailTrigger {
	return routine.EmailTrigger{
		IMAP:    &routine.MailServer{Host: "127.0.0.1", Port: b.port, TLS: "none", Username: imapUser, Password: "{{IMAP_PASSWORD}}"},
		Mailbox: "support",
		Poll:    routine.Duration(50 * time.Millisecond),
	}
}

// start starts a watcher of et and waits until it has its cursor.
func (b *imapBundle) start(t *testing.T, et routine.EmailTrigger) *EmailWatcher {
	t.Helper()
	w := NewEmailWatcher(EmailConfig{
		Routine: "support-ack", Trigger: 1, Email: et,
		Resolve: func(_ context.Context, v string) (string, error) {
			if v == "{{IMAP_PASSWORD}}" {
				return imapPassword, nil
			}
			return v, nil
		},
		Cursors: b.cursors,
		Sink: func(_ context.Context, f Fire) error {
			b.fires <- f
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(b.logs, nil)),
	})
	w.backoff = 10 * time.Millisecond
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	b.waitLog(t, "email trigger watching", 1)
	return w
}

// waitLog waits until the log holds n lines with msg.
func (b *imapBundle) waitLog(t *testing.T, msg string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(b.logs.String(), msg) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, b.logs.String())
		}
	}
}

// appendMail delivers raw to mailbox over IMAP, as a mail server would.
func (b *imapBundle) appendMail(t *testing.T, mailbox, raw string) {
	t.Helper()
	c := b.client(t)
	defer c.Close()
	cmd := c.Append(mailbox, int64(len(raw)), nil)
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func (b *imapBundle) client(t *testing.T) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure("127.0.0.1:"+strconv.Itoa(b.port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(imapUser, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// next returns the next firing, failing the test after a while.
func (b *imapBundle) next(t *testing.T) (Fire, *MailEvent) {
	t.Helper()
	select {
	case f := <-b.fires:
		var ev MailEvent
		if err := json.Unmarshal(f.Payload, &ev); err != nil {
			t.Fatalf("payload %s: %v", f.Payload, err)
		}
		return f, &ev
	case <-time.After(20 * time.Second): // a 5 MiB message under -race on a loaded machine takes seconds
		t.Fatalf("no firing; log:\n%s", b.logs.String())
	}
	panic("unreachable")
}

// none checks that nothing fires for a while.
func (b *imapBundle) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-b.fires:
		t.Fatalf("unexpected firing %s (%s)", f.Payload, f.DedupeKey)
	case <-time.After(200 * time.Millisecond):
	}
}

func simpleMail(n int) string {
	return fmt.Sprintf("From: Alice Example <alice@example.org>\r\n"+
		"To: support@example.com\r\n"+
		"Cc: Bob <bob@example.org>\r\n"+
		"Subject: Question %d\r\n"+
		"Date: Mon, 23 Nov 2026 10:0%d:00 +0100\r\n"+
		"Message-ID: <q%d@example.org>\r\n"+
		"References: <root@example.org>\r\n"+
		"In-Reply-To: <root@example.org>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"\r\n"+
		"Hello, this is question %d.\r\n", n, n%10, n, n)
}

func TestEmailFiresOncePerMessageAcrossRestarts(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	// Mail already in the mailbox at the first start makes no run.
	b.appendMail(t, "support", simpleMail(0))
	// With IDLE and no polling in the test's time, only the server's
	// news of the mail wakes the watcher.
	et := b.trigger()
	et.Poll = routine.Duration(time.Hour)
	w := b.start(t, et)
	b.none(t)

	for i := 1; i <= 3; i++ {
		b.appendMail(t, "support", simpleMail(i))
	}
	// A message of another mailbox is not this trigger's.
	b.appendMail(t, "INBOX", simpleMail(9))
	var keys []string
	for i := 1; i <= 3; i++ {
		f, ev := b.next(t)
		if f.Routine != "support-ack" || f.Trigger != 1 || f.Kind != "email" || f.DedupeWindow != EmailDedupeWindow {
			t.Fatalf("firing %+v", f)
		}
		want := MailEvent{
			Mailbox: "support", UID: uint32(i + 1), UIDValidity: ev.UIDValidity,
			MessageID: fmt.Sprintf("<q%d@example.org>", i), InReplyTo: "<root@example.org>", References: []string{"<root@example.org>"},
			From: "alice@example.org", FromName: "Alice Example", To: []string{"support@example.com"}, Cc: []string{"bob@example.org"},
			Subject: fmt.Sprintf("Question %d", i), Date: fmt.Sprintf("2026-11-23T09:0%d:00Z", i),
			Body: fmt.Sprintf("Hello, this is question %d.\r\n", i), BodyType: "text/plain",
			Attachments: []Attachment{}, Size: int64(len(simpleMail(i))), Problems: []string{},
		}
		got, _ := json.Marshal(ev)
		exp, _ := json.Marshal(want)
		if !bytes.Equal(got, exp) {
			t.Fatalf("event\n%s\nwant\n%s", got, exp)
		}
		if f.DedupeKey != fmt.Sprintf("imap:1:%d:%d", ev.UIDValidity, i+1) {
			t.Fatalf("dedupe key %q", f.DedupeKey)
		}
		keys = append(keys, f.DedupeKey)
	}
	b.none(t)
	w.Stop()

	// A new watcher with the same store fires nothing again, and fires
	// what came while it was down and what comes after.
	b.appendMail(t, "support", simpleMail(4))
	b.start(t, b.trigger())
	f, ev := b.next(t)
	if ev.Subject != "Question 4" || f.DedupeKey == keys[2] {
		t.Fatalf("after the restart: %s %s", f.DedupeKey, ev.Subject)
	}
	b.appendMail(t, "support", simpleMail(5))
	if _, ev := b.next(t); ev.Subject != "Question 5" {
		t.Fatalf("after the restart: %s", ev.Subject)
	}
	b.none(t)
}

func TestEmailPollsWithoutIdle(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, false)
	b.start(t, b.trigger())
	if !strings.Contains(b.logs.String(), "idle=false") {
		t.Fatalf("the server has no IDLE, the watcher thinks it has:\n%s", b.logs.String())
	}
	b.appendMail(t, "support", simpleMail(1))
	b.appendMail(t, "support", simpleMail(2))
	for i := 1; i <= 2; i++ {
		if _, ev := b.next(t); ev.Subject != fmt.Sprintf("Question %d", i) {
			t.Fatalf("firing %d: %q", i, ev.Subject)
		}
	}
	b.none(t)
}

func TestEmailUIDValidityChange(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	w := b.start(t, b.trigger())
	b.appendMail(t, "support", simpleMail(1))
	_, first := b.next(t)
	w.Stop()

	// The mailbox is recreated: UIDs start over under a new UIDVALIDITY.
	if err := b.user.Delete("support"); err != nil {
		t.Fatal(err)
	}
	if err := b.user.Create("support", nil); err != nil {
		t.Fatal(err)
	}
	b.appendMail(t, "support", simpleMail(2))
	b.start(t, b.trigger())
	b.waitLog(t, "UIDVALIDITY changed", 1)
	b.none(t) // the mailbox is not replayed

	b.appendMail(t, "support", simpleMail(3))
	f, ev := b.next(t)
	if ev.Subject != "Question 3" || ev.UIDValidity == first.UIDValidity || ev.UID != 2 {
		t.Fatalf("after the change: %+v", ev)
	}
	if f.DedupeKey != fmt.Sprintf("imap:1:%d:2", ev.UIDValidity) {
		t.Fatalf("dedupe key %q", f.DedupeKey)
	}
}

func TestEmailMalformedMessages(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	b.start(t, b.trigger())

	brokenBoundary := "From: x@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"AAA\"\r\n\r\n" +
		"--AAA\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n" +
		"--AAA\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n" // no closing boundary
	latin1 := "From: =?iso-8859-1?q?J=FCrgen?= <j@example.de>\r\nSubject: Gr\xfc\xdfe aus K\xf6ln\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSch\xf6ne Gr\xfc\xdfe\r\n"
	var big strings.Builder
	big.WriteString("From: big@example.org\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?= with a big file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>See&nbsp;the <b>file</b> &amp; reply.</p><ul><li>one</li><li>two</li></ul></body></html>\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUFB", 19) + "\r\n" // 76 characters: 57 bytes of "AAA…"
	const lines = 5 << 20 / 57
	for range lines {
		big.WriteString(line)
	}
	big.WriteString("--b1--\r\n")
	garbage := "\x00\x01\x02 not a message at all \xff\xfe"

	for _, m := range []string{brokenBoundary, latin1, big.String(), garbage, simpleMail(7)} {
		b.appendMail(t, "support", m)
	}
	_, ev := b.next(t)
	if ev.Subject != "broken" || !strings.Contains(ev.Body, "first part") || len(ev.Problems) == 0 {
		t.Fatalf("broken boundary: %+v", ev)
	}
	_, ev = b.next(t)
	if ev.Subject != "Grüße aus Köln" || ev.FromName != "Jürgen" || ev.Body != "Schöne Grüße\r\n" || !strings.Contains(strings.Join(ev.Problems, ";"), "Subject is not UTF-8") {
		t.Fatalf("8-bit latin-1: %+v", ev)
	}
	_, ev = b.next(t)
	wantAtt := []Attachment{{Name: "data.bin", ContentType: "application/octet-stream", Size: lines * 57}}
	if ev.Subject != "Grüße with a big file" || ev.BodyType != "text/html" || ev.Body != "See\u00a0the file & reply.\n\n- one\n- two" ||
		fmt.Sprint(ev.Attachments) != fmt.Sprint(wantAtt) || ev.Size < 5<<20 {
		t.Fatalf("big attachment: %+v (want attachments %v)", ev, wantAtt)
	}
	if len(ev.Body) > 100 {
		t.Fatal("the event holds the attachment's content")
	}
	_, ev = b.next(t)
	if ev.From != "" || ev.Subject != "" {
		t.Fatalf("garbage: %+v", ev)
	}
	// The trigger carries on.
	if _, ev = b.next(t); ev.Subject != "Question 7" {
		t.Fatalf("after the malformed ones: %+v", ev)
	}
}

func TestEmailMarkSeenAndMove(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	et := b.trigger()
	et.Mark = routine.EmailMarkSeen
	b.start(t, et)
	b.appendMail(t, "support", simpleMail(1))
	b.next(t)
	b.waitCursor(t, 1)
	c := b.client(t)
	defer c.Close()
	if _, err := c.Select("support", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil || len(msgs) != 1 || fmt.Sprint(msgs[0].Flags) != fmt.Sprint([]imap.Flag{imap.FlagSeen}) {
		t.Fatalf("flags after mark seen: %v (%v)", msgs, err)
	}

	m := setupIMAP(t, true)
	et = m.trigger()
	et.MoveTo = "INBOX"
	m.start(t, et)
	m.appendMail(t, "support", simpleMail(2))
	m.next(t)
	m.waitCursor(t, 1)
	c2 := m.client(t)
	defer c2.Close()
	for mbox, want := range map[string]uint32{"support": 0, "INBOX": 1} {
		st, err := c2.Status(mbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *st.NumMessages != want {
			t.Fatalf("%s holds %v messages (%v), want %d", mbox, st, err, want)
		}
	}
}

// waitCursor waits until the cursor's last UID is uid.
func (b *imapBundle) waitCursor(t *testing.T, uid uint32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		v, _, _ := b.cursors.Load(t.Context(), "support-ack", routine.EmailCursorKey(1))
		var c emailCursor
		if json.Unmarshal([]byte(v), &c) == nil && c.LastUID == uid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %s, want last UID %d", v, uid)
		}
	}
}

func TestEmailFiresAgainWithTheSameKeyWhenTheCursorWasNotSaved(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	b.start(t, b.trigger())
	b.cursors.failNext(errors.New("disk full"))
	b.appendMail(t, "support", simpleMail(1))
	f1, _ := b.next(t)
	// The cursor was not saved: the watcher reconnects, fetches the
	// message again and fires it with the same key, which the daemon
	// folds into the run already queued.
	f2, _ := b.next(t)
	if f1.DedupeKey != f2.DedupeKey || !bytes.Equal(f1.Payload, f2.Payload) {
		t.Fatalf("refired %s, want %s", f2.DedupeKey, f1.DedupeKey)
	}
	b.waitLog(t, "save cursor: disk full", 1)
	b.appendMail(t, "support", simpleMail(2))
	if _, ev := b.next(t); ev.Subject != "Question 2" {
		t.Fatalf("next: %+v", ev)
	}
	b.none(t)
}

// A wrong password is retried with backoff: the failure is logged once
// however many times it repeats (then at backoff, a minute later at the
// earliest), never with the password; each one is a problem for the
// operator; once the password is right, one line says the trigger works
// again and the problem is cleared.
func TestEmailWrongPasswordRetries(t *testing.T) {
	t.Parallel()
	b := setupIMAP(t, true)
	var password sync.Mutex
	wrong := true
	problems := &countProblems{}
	w := NewEmailWatcher(EmailConfig{
		Routine: "r", Email: b.trigger(), Cursors: b.cursors,
		Resolve: func(_ context.Context, v string) (string, error) {
			password.Lock()
			defer password.Unlock()
			if v == "{{IMAP_PASSWORD}}" && wrong {
				return "wr0ng-pa55", nil
			}
			if v == "{{IMAP_PASSWORD}}" {
				return imapPassword, nil
			}
			return v, nil
		},
		Sink:     func(context.Context, Fire) error { return nil },
		Logger:   slog.New(slog.NewTextHandler(b.logs, nil)),
		Problems: problems,
	})
	w.backoff = time.Millisecond
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); problems.count() < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d problems reported; log:\n%s", problems.count(), b.logs.String())
		}
	}
	want := "email trigger 0 (127.0.0.1/support)"
	if logs := b.logs.String(); strings.Count(logs, "reconnecting") != 1 || strings.Contains(logs, "wr0ng-pa55") || !strings.Contains(logs, "log in to 127.0.0.1 as "+imapUser) {
		t.Fatalf("want the failure logged once, without the password:\n%s", logs)
	}
	if got := problems.open(); len(got) != 1 || got[0] != "r/"+want {
		t.Fatalf("problems: %v", got)
	}
	password.Lock()
	wrong = false
	password.Unlock()
	b.waitLog(t, want+" works again", 1)
	w.Stop()
	if got := problems.open(); len(got) != 0 {
		t.Fatalf("problems after the recovery: %v", got)
	}
	if logs := b.logs.String(); strings.Count(logs, "reconnecting") != 1 || strings.Count(logs, "works again") != 1 || !strings.Contains(logs, "failures=") {
		t.Fatalf("log:\n%s", logs)
	}
}

// countProblems is a Problems that counts the reports and keeps the open
// problems by routine/trigger.
type countProblems struct {
	mu      sync.Mutex
	reports int
	current map[string]bool
}

func (p *countProblems) Report(routine, trigger, _ string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		p.current = map[string]bool{}
	}
	p.reports++
	p.current[routine+"/"+trigger] = true
}

func (p *countProblems) Clear(routine, trigger string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.current, routine+"/"+trigger)
}

func (p *countProblems) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reports
}

func (p *countProblems) open() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.current {
		out = append(out, k)
	}
	return out
}

func TestHTMLToText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"<p>Hello&nbsp;<b>World</b>&#33;</p><p>Bye</p>", "Hello\u00a0World!\n\nBye"},
		{"line one<br>line two<br/><br>line four", "line one\nline two\n\nline four"},
		{"<script>alert(1)</script><div>a</div><div>b</div>", "a\nb"},
		{"<pre>  keep\n    this</pre>after", "keep\n    this\n\nafter"},
		{"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"  spaced    out\n text &lt;tag&gt; ", "spaced out text <tag>"},
		{"foo<span>bar</span> baz", "foobar baz"},
		{"<p>unclosed <i>tags", "unclosed tags"},
	} {
		if got := htmlToText(tc.in); got != tc.want {
			t.Errorf("htmlToText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// memCursors is a CursorStore in memory; failNext makes the next Save fail.
type memCursors struct {
	mu     sync.Mutex
	values map[string]string
	fail   error
}

func (m *memCursors) Load(_ context.Context, name, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[name+"/"+key]
	return v, ok, nil
}

func (m *memCursors) Save(_ context.Context, name, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail; err != nil && strings.Contains(m.values[name+"/"+key], "uidvalidity") {
		m.fail = nil
		return err
	}
	m.values[name+"/"+key] = value
	return nil
}

func (m *memCursors) failNext(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
