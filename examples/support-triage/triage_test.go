// Package supporttriage is the support-mail triage scenario. Its test runs
// the daemon against an IMAP mailbox, an SMTP server, a CRM and Slack's
// Web API, all in-process on loopback, delivers 50 mails with a daemon
// restart in the middle, and checks that each was handled exactly once.
package supporttriage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/mailtest"
)

const (
	account      = "support@example.com"
	imapPassword = "imap-pass-31337"
	smtpPassword = "smtp-pass-42424"
	crmToken     = "crm-token-9876"
	slackToken   = "xoxb-slack-5555"
)

// crm is a ticketing REST API: POST /tickets with an Idempotency-Key opens
// a ticket once per key. Every third call answers 503 without doing
// anything; mail from blocked@example.org is refused (422).
type crm struct {
	mu      sync.Mutex
	calls   int
	tickets map[string]string // idempotency key → ticket id
}

func (c *crm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if r.Method != http.MethodPost || r.URL.Path != "/tickets" || r.Header.Get("Authorization") != "Bearer "+crmToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if c.calls%3 == 0 {
		http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		return
	}
	var t struct{ Subject, From, Body, Category string }
	if err := json.NewDecoder(r.Body).Decode(&t); err != nil || t.Subject == "" || t.Category != "billing" {
		http.Error(w, `{"error":"bad ticket"}`, http.StatusBadRequest)
		return
	}
	if t.From == "blocked@example.org" {
		http.Error(w, `{"error":"customer is blocked"}`, http.StatusUnprocessableEntity)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	id, ok := c.tickets[key]
	if !ok {
		id = fmt.Sprintf("T-%d", 1000+len(c.tickets))
		c.tickets[key] = id
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"id":%q}`, id)
}

// slackAPI keeps the messages posted with chat.postMessage.
type slackAPI struct {
	mu       sync.Mutex
	messages []map[string]string
}

func (s *slackAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := r.ParseForm(); err != nil || r.URL.Path != "/api/chat.postMessage" {
		fmt.Fprint(w, `{"ok":false,"error":"invalid_request"}`)
		return
	}
	token := r.Form.Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	if token != slackToken {
		fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	s.mu.Lock()
	s.messages = append(s.messages, map[string]string{"channel": r.Form.Get("channel"), "text": r.Form.Get("text")})
	n := len(s.messages)
	s.mu.Unlock()
	fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1700000000.%06d"}`, n)
}

func (s *slackAPI) posted(channel string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.messages {
		if m["channel"] == channel {
			out = append(out, m["text"])
		}
	}
	return out
}

// mail is one message of the test, with the label a person would give it.
type mail struct {
	label, from, subject, body string
}

func (m mail) id(i int) string { return fmt.Sprintf("<m%02d@customers.example.org>", i) }

func (m mail) raw(i int) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: Wed, 25 Nov 2026 10:%02d:00 +0000\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", m.from, account, m.subject, m.id(i), i%60, m.body)
}

// theMails are 50 messages: billing, technical (some urgent) and feature
// requests, written apart from the training set.
func theMails() []mail {
	billing := []string{
		"Invoice shows the wrong amount|My invoice for November says $99 but my plan is $49. Please correct the invoice.",
		"Double charge on my credit card|You charged my card twice for the same subscription this month, I need a refund.",
		"Refund for cancelled plan|I cancelled before renewal but was charged anyway. Please refund the payment.",
		"VAT number missing on invoice|Our company VAT number is not on the invoice, we need a corrected invoice for accounting.",
		"Payment failed but money left my account|The checkout said payment failed, yet my bank shows the charge.",
		"Change billing address|Please update the billing address on our invoices to our new office.",
		"Annual plan discount not applied|I switched to yearly billing but was charged the monthly price.",
		"Receipt for last payment|Can you send me a receipt for the payment made on the 3rd?",
		"Overcharged after downgrade|I downgraded my plan but the invoice still charges the old price.",
		"Credit card expired, how to update|My card expired and the subscription payment will fail, how do I update payment details?",
		"Refund not received yet|You promised a refund two weeks ago but it has not arrived on my card.",
		"Unexpected charge|There is a charge from you I do not recognize on my statement, please explain this billing.",
		"Invoice in euros please|Can our invoices be issued in euros instead of dollars?",
		"Billing contact change|Please send invoices to finance@ourcompany.example instead of me.",
		"Tax exempt status|We are a non-profit and should not be charged sales tax, please fix our billing.",
		"Charged for extra seats|We were billed for 10 seats but only use 6, please refund the difference.",
		"Pro-rated charge question|Why was I charged a pro-rated amount when I upgraded mid-month?",
	}
	technical := []string{
		"URGENT: dashboard is down|The dashboard returns a 502 error for everyone in our team since this morning. urgent!",
		"App crashes on startup|Since the last update the desktop app crashes immediately when I open it.",
		"API returns 500 errors|Our integration gets HTTP 500 from the API on every request since yesterday.",
		"Cannot log in, password reset email never arrives|I requested a password reset three times and no email came.",
		"Outage in EU region?|None of our EU users can load the app, is there an outage? This is critical for us.",
		"Sync is very slow|Syncing 100 files takes over an hour, it used to take a minute.",
		"Webhook deliveries failing|Our webhook endpoint receives nothing since Monday, the delivery log shows timeouts.",
		"Export to CSV broken|Exporting a report to CSV produces an empty file.",
		"Two-factor code rejected|The authenticator code is always rejected as invalid, I cannot log in.",
		"Site down, need help asap|Our public page hosted with you is down, please help asap.",
		"Mobile app freezes|The iOS app freezes when I open the settings screen.",
		"Error when uploading images|Uploading a PNG larger than 2 MB fails with an unknown error.",
		"Search returns no results|Search finds nothing even for documents I just created.",
		"Integration with Slack disconnects|The Slack integration disconnects every few hours and we have to reconnect it.",
		"Critical: data missing after migration|After your migration last night half of our projects are missing.",
		"Timeouts when saving|Saving a large document times out after 30 seconds.",
	}
	features := []string{
		"Feature request: dark mode|It would be great to have a dark mode for the web app.",
		"Please add SSO with Okta|We would like to sign in with Okta single sign-on, any plans to support it?",
		"Suggestion: keyboard shortcuts|Could you add keyboard shortcuts for the most common actions?",
		"Export to PDF would be nice|Please consider adding an export to PDF option for reports.",
		"Idea: recurring tasks|It would help us a lot if tasks could repeat every week.",
		"Request: API for comments|Please expose comments in the public API so we can integrate them.",
		"Custom fields for projects|We would love to add our own custom fields to projects.",
		"Wish: Gantt chart view|A Gantt chart view of the timeline would be a great addition.",
		"Add German translation|Our team would appreciate the interface in German.",
		"Feature idea: templates|Could you add project templates so we can reuse our setup?",
		"Bulk edit please|Editing 50 items one by one is tedious, please add bulk edit.",
		"Support for webhooks on delete|Please add a webhook event when an item is deleted.",
		"Request for offline mode|An offline mode for the mobile app would be very useful for field work.",
		"Calendar integration suggestion|Please add integration with Google Calendar.",
		"More chart types|Could you add pie charts to the dashboard widgets?",
		"Suggestion: audit log export|We would like to export the audit log for compliance.",
	}
	lists := map[string][]string{"billing": billing, "technical": technical, "feature-request": features}
	var mails []mail
	// Interleaved, as real mail comes.
	for i := 0; len(mails) < len(billing)+len(technical)+len(features); i++ {
		for _, label := range []string{"billing", "technical", "feature-request"} {
			if i >= len(lists[label]) {
				continue
			}
			subject, body, _ := strings.Cut(lists[label][i], "|")
			from := fmt.Sprintf("Customer %s-%d <%s%d@customers.example.org>", label, i, label, i)
			mails = append(mails, mail{label: label, from: from, subject: subject, body: body})
		}
	}
	// One billing mail the CRM refuses for good, among the first 25.
	blocked := mail{label: "billing", from: "Blocked Customer <blocked@example.org>", subject: "Refund my last invoice",
		body: "Please refund the charge on my last invoice to my credit card."}
	return append(mails[:20], append([]mail{blocked}, mails[20:]...)...)
}

func TestTriageFiftyMailsAcrossARestart(t *testing.T) {
	mails := theMails()
	if len(mails) != 50 {
		t.Fatalf("%d mails, want 50", len(mails))
	}
	imap := mailtest.StartIMAP(t, account, imapPassword, "support")
	outbox := mailtest.StartSMTP(t, account, smtpPassword)
	tickets := &crm{tickets: map[string]string{}}
	crmSrv := httptest.NewServer(tickets)
	t.Cleanup(crmSrv.Close)
	slack := &slackAPI{}
	slackSrv := httptest.NewServer(slack)
	t.Cleanup(slackSrv.Close)

	dir := clitest.CopyProject(t, ".")
	configure(t, dir, map[string]string{
		`imap: { host: imap.gmail.com, port: 993,`:        fmt.Sprintf(`imap: { host: 127.0.0.1, port: %d, tls: none,`, imap.Port),
		`smtp: { host: "{{ env.SMTP_HOST }}", port: 587,`: fmt.Sprintf(`smtp: { host: 127.0.0.1, port: %d, tls: none,`, outbox.Port),
		"CRM_URL: https://crm.example.com/api":            "CRM_URL: " + crmSrv.URL,
		"SLACK_API: https://slack.com/api/":               "SLACK_API: " + slackSrv.URL + "/api/",
	})
	for k, v := range map[string]string{"IMAP_PASSWORD": imapPassword, "SMTP_PASSWORD": smtpPassword, "CRM_TOKEN": crmToken, "SLACK_BOT_TOKEN": slackToken} {
		t.Setenv(k, v)
	}

	daemon := clitest.StartServe(t, dir)
	waitFor(t, daemon, 10*time.Second, "the email trigger to start", func() bool {
		return strings.Contains(daemon.Out.String(), `msg="email trigger watching"`)
	})
	for i, m := range mails[:25] {
		imap.Deliver(t, "support", m.raw(i))
	}
	waitFor(t, daemon, 30*time.Second, "10 acknowledgements", func() bool {
		if len(outbox.Messages()) >= 10 {
			return true
		}
		for _, r := range listRuns(t, dir) {
			if r.State == "dead" {
				if d := show(t, dir, r.ID); d.Error != nil && !strings.Contains(d.Error.Message, "blocked") {
					t.Fatalf("run %s dead: %s", r.ID, d.Error.Message)
				}
			}
		}
		return false
	})
	if code := daemon.Stop(); code != 0 {
		t.Fatalf("daemon stopped with %d:\n%s", code, daemon.Out.String())
	}
	// Mail keeps coming while no daemon runs.
	for i, m := range mails[25:] {
		imap.Deliver(t, "support", m.raw(25+i))
	}
	daemon = clitest.StartServe(t, dir)
	waitFor(t, daemon, 60*time.Second, "every run to end", func() bool {
		runs := listRuns(t, dir)
		if len(runs) < 50 {
			return false
		}
		for _, r := range runs {
			if r.State == "queued" || r.State == "running" {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up

	runs := listRuns(t, dir)
	if len(runs) != 50 {
		t.Fatalf("%d runs, want 50 (one per mail)", len(runs))
	}
	byMessage := map[string]runDetail{}
	correct := 0
	for _, r := range runs {
		d := show(t, dir, r.ID)
		var ev struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal(d.Trigger.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if _, dup := byMessage[ev.MessageID]; dup {
			t.Errorf("message %s started two runs", ev.MessageID)
		}
		byMessage[ev.MessageID] = d
	}
	var dead, billingRuns, escalated int
	for i, m := range mails {
		d, ok := byMessage[m.id(i)]
		if !ok {
			t.Errorf("mail %d (%s) started no run", i, m.subject)
			continue
		}
		label := d.step("kind").Outputs["best_label"]
		if label == m.label {
			correct++
		}
		switch {
		case m.from == "Blocked Customer <blocked@example.org>":
			if d.State != "dead" || d.step("tell-operators").State != "succeeded" {
				t.Errorf("the refused mail: run %s, operators told: %s", d.State, d.step("tell-operators").State)
			}
			dead++
		case d.State != "succeeded":
			t.Errorf("mail %d (%s): run %s %+v", i, m.subject, d.State, d.Error)
		}
		if d.step("kind").Outputs["label"] == "billing" {
			billingRuns++
		}
		if d.step("escalate").State == "succeeded" {
			escalated++
		}
	}
	// Acknowledgements: one per handled mail, threaded under it.
	acks := map[string]int{}
	for _, sent := range outbox.Messages() {
		mr, err := gomail.CreateReader(bytes.NewReader(sent.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := mr.Header.MsgIDList("In-Reply-To")
		if len(ids) != 1 {
			t.Fatalf("an ack without In-Reply-To: %v", ids)
		}
		acks["<"+ids[0]+">"]++
	}
	for i, m := range mails {
		want := 1
		if m.from == "Blocked Customer <blocked@example.org>" {
			want = 0 // its run failed at the ticket, before the ack
		}
		if n := acks[m.id(i)]; n != want {
			t.Errorf("mail %d (%s): %d acknowledgements, want %d", i, m.subject, n, want)
		}
	}
	// Tickets: one per billing mail, though every third CRM call failed.
	tickets.mu.Lock()
	nTickets, calls := len(tickets.tickets), tickets.calls
	tickets.mu.Unlock()
	if nTickets != billingRuns-dead {
		t.Errorf("%d tickets for %d billing mails (one refused)", nTickets, billingRuns)
	}
	if esc := slack.posted("#support-escalations"); len(esc) != escalated || escalated == 0 {
		t.Errorf("%d escalations posted, %d runs escalated", len(esc), escalated)
	}
	ops := slack.posted("#support-ops")
	if len(ops) != 1 || !strings.Contains(ops[0], `"Refund my last invoice"`) || !strings.Contains(ops[0], "routines dlq replay") {
		t.Errorf("operators were told %v", ops)
	}
	out := daemon.Out.String()
	for _, secret := range []string{imapPassword, smtpPassword, crmToken, slackToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the daemon's output shows a secret")
		}
	}
	t.Logf("50 mails: %d billing runs (%d tickets, %d CRM calls), %d escalations, %d dead, classifier agreed with the test's labels on %d/50",
		billingRuns, nTickets, calls, escalated, dead, correct)
	if correct < 45 {
		t.Errorf("the classifier agreed with the labels on %d of 50 mails, want at least 45 (90 %%)", correct)
	}
	checkReport(t, dir, dead)
}

// checkReport checks the value report of the 50 runs: 4 minutes saved by
// each that succeeded, the dead ones counted as errors.
func checkReport(t *testing.T, dir string, dead int) {
	t.Helper()
	code, out, errOut := clitest.RunCLI(t, "--project", dir, "report", "-o", "json")
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	var rep struct {
		Routines []struct {
			Name       string  `json:"name"`
			Runs       int     `json:"runs"`
			Dead       int     `json:"dead"`
			ErrorRate  float64 `json:"error_rate"`
			HoursSaved float64 `json:"hours_saved"`
		} `json:"routines"`
		Tags []struct {
			Name string `json:"name"`
			Runs int    `json:"runs"`
		} `json:"tags"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Routines) != 1 || len(rep.Tags) != 1 {
		t.Fatalf("report: %s", out)
	}
	r := rep.Routines[0]
	if r.Name != "support-triage" || r.Runs != 50 || r.Dead != dead || r.ErrorRate != float64(dead)/50 ||
		r.HoursSaved != float64(50-dead)*4/60 || rep.Tags[0].Name != "support" || rep.Tags[0].Runs != 50 {
		t.Errorf("report: %s", out)
	}
}

// configure rewrites the routine for the test's servers.
func configure(t *testing.T, dir string, replace map[string]string) {
	t.Helper()
	path := filepath.Join(dir, "routine.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("routine.yaml lacks %q", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d *clitest.Daemon, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s:\n%s", limit, what, d.Out.String())
		}
	}
}

type runSummary struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func listRuns(t *testing.T, dir string) []runSummary {
	t.Helper()
	code, out, errOut := clitest.RunCLI(t, "--project", dir, "runs", "--limit", "1000", "-o", "json")
	if code != 0 {
		t.Fatalf("runs: %s", errOut)
	}
	var runs []runSummary
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatal(err)
	}
	return runs
}

type stepDetail struct {
	ID      string         `json:"id"`
	State   string         `json:"state"`
	Outputs map[string]any `json:"outputs"`
}

type runDetail struct {
	State   string `json:"state"`
	Trigger struct {
		Payload json.RawMessage `json:"payload"`
	} `json:"trigger"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
	Steps []stepDetail `json:"steps"`
}

func (d runDetail) step(id string) stepDetail {
	for _, s := range d.Steps {
		if s.ID == id {
			return s
		}
	}
	return stepDetail{}
}

func show(t *testing.T, dir, id string) runDetail {
	t.Helper()
	code, out, errOut := clitest.RunCLI(t, "--project", dir, "show", id, "-o", "json")
	if code != 0 {
		t.Fatalf("show %s: %s", id, errOut)
	}
	var d runDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The routine's own tests (tests/triage.yaml) pass: `routines test`.
func TestRoutineTests(t *testing.T) {
	code, out, errOut := clitest.RunCLI(t, "test", ".")
	if code != 0 {
		t.Fatalf("routines test: exit %d\n%s%s", code, out, errOut)
	}
}
