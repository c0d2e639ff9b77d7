package trigger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/gmailtest"
	"github.com/routines-dev/routines/internal/routine"
)

// gmailBundle is a fake Gmail, a store of cursors and a sink that records
// firings.
type gmailBundle struct {
	gmail   *gmailtest.Server
	cursors *countingCursors
	fires   chan Fire
	logs    *syncBuffer
	// problems are those the watcher reported.
	problems *countProblems
	// modifiedAtFire is what the server had modified when each run was
	// queued, by message ID.
	mu             sync.Mutex
	modifiedAtFire map[string][]string
}

func setupGmail(t *testing.T) *gmailBundle {
	t.Helper()
	return &gmailBundle{
		gmail:   gmailtest.Start(t),
		cursors: &countingCursors{memCursors: &memCursors{values: map[string]string{}}},
		fires:   make(chan Fire, 100), logs: &syncBuffer{}, problems: &countProblems{}, modifiedAtFire: map[string][]string{},
	}
}

// trigger returns an email trigger on the fake Gmail's label support.
func (b *gmailBundle) trigger() routine.EmailTrigger {
	return routine.EmailTrigger{
		Gmail: &routine.GmailAPI{
			ClientID: gmailtest.ClientID, ClientSecret: "{{GMAIL_CLIENT_SECRET}}", RefreshToken: "{{GMAIL_REFRESH_TOKEN}}",
			BaseURL: b.gmail.URL + "/gmail/v1/", TokenURL: b.gmail.URL + "/token",
		},
		Label: "support",
		Poll:  routine.Duration(20 * time.Millisecond),
	}
}

// start starts a watcher of et; wait says to wait until it has its cursor.
func (b *gmailBundle) start(t *testing.T, et routine.EmailTrigger, wait bool) *GmailWatcher {
	t.Helper()
	w := NewGmailWatcher(EmailConfig{
		Routine: "support-ack", Trigger: 1, Email: et,
		Resolve: func(_ context.Context, v string) (string, error) {
			switch v {
			case "{{GMAIL_CLIENT_SECRET}}":
				return gmailtest.ClientSecret, nil
			case "{{GMAIL_REFRESH_TOKEN}}":
				return gmailtest.RefreshToken, nil
			}
			return v, nil
		},
		Cursors: b.cursors,
		Sink: func(_ context.Context, f Fire) error {
			var ev gmailEvent
			if err := json.Unmarshal(f.Payload, &ev); err != nil {
				t.Errorf("payload %s: %v", f.Payload, err)
			}
			b.mu.Lock()
			b.modifiedAtFire[ev.GmailID] = b.gmail.Modified()
			b.mu.Unlock()
			b.fires <- f
			return nil
		},
		Logger:   slog.New(slog.NewTextHandler(b.logs, nil)),
		Problems: b.problems,
	})
	w.backoff = 10 * time.Millisecond
	// Counted before the start: the watcher may log at once.
	watching := strings.Count(b.logs.String(), "email trigger watching")
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if wait {
		b.waitLog(t, "email trigger watching", watching+1)
	}
	return w
}

func (b *gmailBundle) waitLog(t *testing.T, msg string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(b.logs.String(), msg) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, b.logs.String())
		}
	}
}

// gmailFire is a firing with its event.
type gmailFire struct {
	Fire
	ev gmailEvent
}

func (b *gmailBundle) next(t *testing.T) gmailFire {
	t.Helper()
	select {
	case f := <-b.fires:
		var ev gmailEvent
		if err := json.Unmarshal(f.Payload, &ev); err != nil {
			t.Fatalf("payload %s: %v", f.Payload, err)
		}
		return gmailFire{f, ev}
	case <-time.After(5 * time.Second):
		t.Fatalf("no firing; log:\n%s", b.logs.String())
	}
	panic("unreachable")
}

func (b *gmailBundle) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-b.fires:
		t.Fatalf("unexpected firing %s (%s)", f.Payload, f.DedupeKey)
	case <-time.After(200 * time.Millisecond):
	}
}

// cursor returns the saved cursor.
func (b *gmailBundle) cursor(t *testing.T) gmailCursor {
	t.Helper()
	v, _, _ := b.cursors.Load(t.Context(), "support-ack", routine.EmailCursorKey(1))
	var c gmailCursor
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		t.Fatalf("cursor %q: %v", v, err)
	}
	return c
}

// countingCursors counts the saves of cursors.
type countingCursors struct {
	*memCursors
	saves atomic.Int64
}

func (c *countingCursors) Save(ctx context.Context, name, key, value string) error {
	c.saves.Add(1)
	return c.memCursors.Save(ctx, name, key, value)
}

func TestGmailFiresOncePerMessageAcrossRestarts(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	// Mail already there at the first start makes no run.
	g.Deliver(simpleMail(0), "INBOX", gmailtest.SupportLabel)
	w := b.start(t, b.trigger(), true)
	if c := b.cursor(t); c != (gmailCursor{Account: gmailtest.Account, Label: "support", LabelID: gmailtest.SupportLabel, HistoryID: g.HistoryID()}) {
		t.Fatalf("first cursor %+v", c)
	}
	b.none(t)
	// Polls that find nothing new write nothing.
	if n := b.cursors.saves.Load(); n != 1 {
		t.Fatalf("%d cursor saves, want 1", n)
	}

	// Three messages: history.list answers them over two pages.
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, g.Deliver(simpleMail(i), "INBOX", gmailtest.SupportLabel))
	}
	// Mail without the label is not this trigger's.
	g.Deliver(simpleMail(9), "INBOX")
	for i := 1; i <= 3; i++ {
		f := b.next(t)
		if f.Routine != "support-ack" || f.Trigger != 1 || f.Kind != "email" || f.DedupeWindow != EmailDedupeWindow || f.DedupeKey != "gmail:1:"+ids[i-1] {
			t.Fatalf("firing %+v", f.Fire)
		}
		want := gmailEvent{
			MailEvent: &MailEvent{
				Mailbox:   "support",
				MessageID: fmt.Sprintf("<q%d@example.org>", i), InReplyTo: "<root@example.org>", References: []string{"<root@example.org>"},
				From: "alice@example.org", FromName: "Alice Example", To: []string{"support@example.com"}, Cc: []string{"bob@example.org"},
				Subject: fmt.Sprintf("Question %d", i), Date: fmt.Sprintf("2026-11-23T09:0%d:00Z", i),
				Body: fmt.Sprintf("Hello, this is question %d.\r\n", i), BodyType: "text/plain",
				Attachments: []Attachment{}, Size: int64(len(simpleMail(i))), Problems: []string{},
			},
			GmailID: ids[i-1], ThreadID: "th" + ids[i-1], Labels: []string{"UNREAD", "INBOX", "support"},
		}
		exp, _ := json.Marshal(want)
		if !bytes.Equal(f.Payload, exp) {
			t.Fatalf("event\n%s\nwant\n%s", f.Payload, exp)
		}
	}
	b.none(t)
	// Without mark, the messages stay unread.
	if l := g.Labels(ids[0]); !slices.Contains(l, "UNREAD") {
		t.Fatalf("labels %v", l)
	}
	w.Stop()
	if c := b.cursor(t); c.HistoryID != g.HistoryID() {
		t.Fatalf("cursor %+v after the sync, want history ID %d", c, g.HistoryID())
	}

	// A new watcher with the same store fires nothing again, and fires
	// what came while it was down and what comes after.
	down := g.Deliver(simpleMail(4), gmailtest.SupportLabel)
	b.start(t, b.trigger(), false)
	if f := b.next(t); f.ev.GmailID != down || f.ev.Subject != "Question 4" || !slices.Equal(f.ev.Labels, []string{"UNREAD", "support"}) {
		t.Fatalf("after the restart: %s %+v", f.DedupeKey, f.ev)
	}
	after := g.Deliver(simpleMail(5), gmailtest.SupportLabel)
	if f := b.next(t); f.ev.GmailID != after {
		t.Fatalf("after the restart: %+v", f.ev)
	}
	b.none(t)
	if n := strings.Count(b.logs.String(), "email received"); n != 5 {
		t.Fatalf("%d messages received, want 5:\n%s", n, b.logs.String())
	}
}

func TestGmailHistoryTooOldRestartsFromNow(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	w := b.start(t, b.trigger(), true)
	w.Stop()

	// While the daemon is down a message comes, and Gmail forgets the
	// history the cursor points into.
	g.Deliver(simpleMail(1), gmailtest.SupportLabel)
	g.ForgetHistory()
	b.start(t, b.trigger(), true)
	b.waitLog(t, "too old for Gmail (404)", 1)
	b.none(t) // the message in the gap is skipped
	if c := b.cursor(t); c.HistoryID != g.HistoryID() {
		t.Fatalf("cursor %+v, want the current history ID %d", c, g.HistoryID())
	}
	id := g.Deliver(simpleMail(2), gmailtest.SupportLabel)
	if f := b.next(t); f.ev.GmailID != id {
		t.Fatalf("after the restart: %+v", f.ev)
	}
}

func TestGmailMarkSeenAfterTheRunIsQueued(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	et := b.trigger()
	// The base URL may be written without gmail/v1/.
	et.Gmail.BaseURL = g.URL
	et.Mark = routine.EmailMarkSeen
	b.start(t, et, true)
	id := g.Deliver(simpleMail(1), "INBOX", gmailtest.SupportLabel)
	b.next(t)
	for deadline := time.Now().Add(5 * time.Second); slices.Contains(g.Labels(id), "UNREAD"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still unread: %v", g.Labels(id))
		}
	}
	if l := g.Labels(id); !slices.Equal(l, []string{"INBOX", gmailtest.SupportLabel}) {
		t.Fatalf("labels %v", l)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.modifiedAtFire[id]; len(m) != 0 {
		t.Fatalf("the message was modified before its run was queued: %v", m)
	}
}

func TestGmailTokenEndpointFailsThenRecovers(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	g.FailTokens(3)
	b.start(t, b.trigger(), false)
	b.waitLog(t, "email trigger watching", 1)
	b.waitLog(t, "works again", 1)
	// Three failures, one line; then one line when it works again.
	logs := b.logs.String()
	if n := strings.Count(logs, "level=ERROR"); n != 1 || !strings.Contains(logs, `auth: list labels: the token endpoint refused to refresh the access token: oauth2: \"invalid_grant\" \"Token has been expired or revoked.\"`) ||
		!strings.Contains(logs, `msg="email trigger 1 (gmail label support) works again"`) || !strings.Contains(logs, "failures=3") {
		t.Fatalf("%d auth errors logged, want 1, and the recovery:\n%s", n, logs)
	}
	if p := b.problems; p.count() != 3 || len(p.open()) != 0 {
		t.Fatalf("%d problems reported, %v open; want 3 and none", p.count(), p.open())
	}
	for _, secret := range []string{gmailtest.ClientSecret, gmailtest.RefreshToken, "ya29."} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, logs)
		}
	}
	id := g.Deliver(simpleMail(1), gmailtest.SupportLabel)
	if f := b.next(t); f.ev.GmailID != id {
		t.Fatalf("after the recovery: %+v", f.ev)
	}
	// The access token is refreshed once per session, not per request.
	if n := g.Tokens(); n != 1 {
		t.Fatalf("%d access tokens issued, want 1", n)
	}
}

func TestGmailRateLimitsAndServerErrorsRetry(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	b.start(t, b.trigger(), true)
	g.FailAPI(http.StatusTooManyRequests, http.StatusServiceUnavailable)
	id := g.Deliver(simpleMail(1), gmailtest.SupportLabel)
	if f := b.next(t); f.ev.GmailID != id {
		t.Fatalf("after the errors: %+v", f.ev)
	}
	b.none(t)
	logs := b.logs.String()
	if !strings.Contains(logs, "level=WARN msg=\"email trigger (gmail): list history: gmail API: 429 Too Many Requests") || !strings.Contains(logs, "gmail API: 503 Service Unavailable") || strings.Contains(logs, "level=ERROR") {
		t.Fatalf("log:\n%s", logs)
	}
	// A token without the scope, or the API off for the client's project,
	// is the credentials' fault: an error, and still retried.
	g.FailAPI(http.StatusForbidden)
	id = g.Deliver(simpleMail(2), gmailtest.SupportLabel)
	if f := b.next(t); f.ev.GmailID != id {
		t.Fatalf("after the errors: %+v", f.ev)
	}
	if logs := b.logs.String(); !strings.Contains(logs, "level=ERROR msg=\"email trigger (gmail): auth: list history: gmail API: 403 Forbidden") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestGmailMalformedMessagesStillFire(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	g := b.gmail
	b.start(t, b.trigger(), true)
	garbage := g.Deliver("\x00\x01\x02 not a message at all \xff\xfe", gmailtest.SupportLabel)
	notBase64 := g.DeliverRaw("!!! not base64url !!!", 4242, gmailtest.SupportLabel)
	// Gmail's raw field may come without padding, too.
	unpadded := g.DeliverRaw(base64.RawURLEncoding.EncodeToString([]byte(simpleMail(7)+"x")), 0, gmailtest.SupportLabel)
	// A message deleted before the watcher reads it starts no run.
	g.Delete(g.Deliver(simpleMail(8), gmailtest.SupportLabel))
	last := g.Deliver(simpleMail(9), gmailtest.SupportLabel)

	f := b.next(t)
	if f.ev.GmailID != garbage || f.ev.From != "" || f.ev.Subject != "" || len(f.ev.Problems) == 0 {
		t.Fatalf("garbage: %+v", f.ev)
	}
	f = b.next(t)
	if f.ev.GmailID != notBase64 || f.ev.Size != 4242 || len(f.ev.Problems) == 0 || !strings.HasPrefix(f.ev.Problems[0], "the raw message from Gmail is not base64url") {
		t.Fatalf("not base64: %+v", f.ev)
	}
	f = b.next(t)
	if f.ev.GmailID != unpadded || f.ev.Subject != "Question 7" || len(f.ev.Problems) != 0 {
		t.Fatalf("unpadded: %+v", f.ev)
	}
	if f = b.next(t); f.ev.GmailID != last {
		t.Fatalf("after the malformed and deleted ones: %+v", f.ev)
	}
	b.none(t)
}

func TestGmailUnknownLabelRetries(t *testing.T) {
	t.Parallel()
	b := setupGmail(t)
	et := b.trigger()
	et.Label = "Support" // another case of the same label finds it
	b.start(t, et, true)
	if c := b.cursor(t); c.LabelID != gmailtest.SupportLabel {
		t.Fatalf("cursor %+v", c)
	}

	m := setupGmail(t)
	et = m.trigger()
	et.Label = "sales"
	m.start(t, et, false)
	for deadline := time.Now().Add(5 * time.Second); m.problems.count() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d tries; log:\n%s", m.problems.count(), m.logs.String())
		}
	}
	if n := strings.Count(m.logs.String(), `the account has no label \"sales\"`); n != 1 {
		t.Fatalf("the failure is in the log %d times, want once:\n%s", n, m.logs.String())
	}
}

func TestGmailEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                             "https://gmail.googleapis.com/",
		"http://127.0.0.1:9":           "http://127.0.0.1:9/",
		"http://127.0.0.1:9/":          "http://127.0.0.1:9/",
		"http://127.0.0.1:9/gmail/v1/": "http://127.0.0.1:9/",
		"http://127.0.0.1:9/gmail/v1":  "http://127.0.0.1:9/",
		"https://proxy.example.com/g/": "https://proxy.example.com/g/",
	} {
		if got := gmailEndpoint(in); got != want {
			t.Errorf("gmailEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
