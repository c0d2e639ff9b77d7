// Package emailack is the example of docs/connectors/email.md: support mail
// acknowledged with a threaded reply. Its test runs the daemon against an
// IMAP and an SMTP server of its own, on the loopback interface.
package emailack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	gomail "github.com/emersion/go-message/mail"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/cli/clitest"
	"github.com/routines-dev/routines/internal/mailtest"
)

const (
	account      = "support@example.com"
	imapPassword = "imap-secret-1"
	smtpPassword = "smtp-secret-2"
)

// project copies the example into a directory of the test's, its
// servers moved to the ports given.
func project(t *testing.T, imapPort, smtpPort int) string {
	t.Helper()
	dir := clitest.CopyProject(t, ".")
	path := filepath.Join(dir, "routine.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(data), "port: 1143", "port: "+strconv.Itoa(imapPort), 1)
	yaml = strings.Replace(yaml, "port: 1025", "port: "+strconv.Itoa(smtpPort), 1)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFiveMailsFiveAcks(t *testing.T) {
	server := mailtest.StartIMAP(t, account, imapPassword, "support")
	outbox := mailtest.StartSMTP(t, account, smtpPassword)
	dir := project(t, server.Port, outbox.Port)
	t.Setenv("IMAP_PASSWORD", imapPassword)
	t.Setenv("SMTP_PASSWORD", smtpPassword)

	_, out := clitest.Serve(t, dir)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), `msg="email trigger watching"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the email trigger did not start:\n%s", out.String())
		}
	}

	for i := 1; i <= 5; i++ {
		server.Deliver(t, "support", fmt.Sprintf("From: Customer %d <customer%d@example.org>\r\nTo: %s\r\nSubject: Order %d is late\r\n"+
			"Message-ID: <order-%d@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWhere is my order %d?\r\n", i, i, account, i, i, i))
	}

	for deadline := time.Now().Add(15 * time.Second); len(outbox.Messages()) < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d acks sent, want 5:\n%s", len(outbox.Messages()), out.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	sent := outbox.Messages()
	if len(sent) != 5 {
		t.Fatalf("%d acks sent, want 5", len(sent))
	}
	seen := map[string]bool{}
	for _, m := range sent {
		mr, err := gomail.CreateReader(bytes.NewReader(m.Data))
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
		if want := fmt.Sprintf("customer%d@example.org", n); len(m.To) != 1 || m.To[0] != want || m.From != account {
			t.Errorf("ack %d: envelope from %s to %v, want %s", n, m.From, m.To, want)
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
	c := server.Client(t)
	defer c.Close()
	if _, err := c.Select("support", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	unseen, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || len(unseen.AllUIDs()) != 0 {
		t.Errorf("unseen messages %v (%v), want none", unseen, err)
	}
}

// Before `routines secrets set IMAP_PASSWORD`, the trigger retries with
// backoff: the daemon logs why once and GET /v1/status lists the problem;
// once the password is set, the trigger logs in at its next try, says so
// once, and the problem is gone.
func TestPasswordNotSetYet(t *testing.T) {
	server := mailtest.StartIMAP(t, account, imapPassword, "support")
	dir := project(t, server.Port, 1025)
	t.Setenv("ROUTINES_MASTER_KEY", "")
	t.Setenv("ROUTINES_MASTER_KEY_FILE", filepath.Join(t.TempDir(), "master.key"))
	t.Setenv("IMAP_PASSWORD", "")
	os.Unsetenv("IMAP_PASSWORD") // restored by the Setenv above

	d := clitest.StartServe(t, dir)
	const trig = "email trigger 0 (127.0.0.1/support)"
	waitFor(t, d, "two failed tries", func(ps []problem) bool { return len(ps) == 1 && ps[0].Count >= 2 })
	ps := problems(t, d.Addr)
	if ps[0].Routine != "email-ack" || ps[0].Trigger != trig || !strings.Contains(ps[0].Message, "secret IMAP_PASSWORD is not set") {
		t.Fatalf("problem %+v", ps[0])
	}
	if n := strings.Count(d.Out.String(), "secret IMAP_PASSWORD is not set"); n != 1 {
		t.Fatalf("the failure is in the log %d times, want once:\n%s", n, d.Out.String())
	}

	code, out, errOut := clitest.RunCLIWith(t, cli.Deps{Stdin: strings.NewReader(imapPassword)}, "--project", dir, "secrets", "set", "IMAP_PASSWORD")
	if code != 0 {
		t.Fatalf("secrets set: exit %d %s%s", code, out, errOut)
	}
	waitFor(t, d, "the recovery", func(ps []problem) bool { return len(ps) == 0 })
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.Out.String(), trig+" works again"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery in the log:\n%s", d.Out.String())
		}
	}
}

// problem is what the test reads of a problem in GET /v1/status.
type problem struct {
	Routine, Trigger, Message string
	Count                     int
}

// problems returns the problems GET /v1/status lists.
func problems(t *testing.T, addr string) []problem {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Problems []problem }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/status: %d %v", resp.StatusCode, err)
	}
	return st.Problems
}

// waitFor waits up to 10 s until the daemon's problems are as ok wants.
func waitFor(t *testing.T, d *clitest.Daemon, what string, ok func([]problem) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(problems(t, d.Addr)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %s; problems %+v; log:\n%s", what, problems(t, d.Addr), d.Out.String())
		}
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
