package cli_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/gmailtest"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// The daemon starts the gmail backend of an email trigger: one run per
// message added to the label, with the event of the message, its
// credentials resolved from secrets; mark: seen removes UNREAD.
func TestServeGmailTrigger(t *testing.T) {
	t.Parallel()
	g := gmailtest.Start(t)
	for k, v := range map[string]string{"ROUTINES_TEST_GMAIL_SECRET": gmailtest.ClientSecret, "ROUTINES_TEST_GMAIL_TOKEN": gmailtest.RefreshToken} {
		if err := os.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	dir := writeRoutine(t, `name: gmail-ack
secrets: [ROUTINES_TEST_GMAIL_SECRET, ROUTINES_TEST_GMAIL_TOKEN]
triggers:
  - email:
      gmail:
        client_id: `+gmailtest.ClientID+`
        client_secret: "{{ROUTINES_TEST_GMAIL_SECRET}}"
        refresh_token: "{{ROUTINES_TEST_GMAIL_TOKEN}}"
        base_url: `+g.URL+`/gmail/v1/
        token_url: `+g.URL+`/token
      label: support
      poll: 1s
      mark: seen
steps:
  - id: show
    run: echo "got={{ event.gmail_id }} {{ event.subject }} from {{ event.from }}" >> "$ROUTINES_OUTPUT"
`)
	d := startServe(t, dir)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.stderr.String()+d.stdout.String(), `msg="email trigger watching"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the gmail trigger did not start:\n%s%s", d.stdout.String(), d.stderr.String())
		}
	}
	// The output each message's run must write.
	want := map[string]string{}
	id := g.Deliver("From: Ada <ada@example.org>\r\nSubject: Order 1\r\nMessage-ID: <o1@example.org>\r\n\r\nWhere is it?\r\n", "INBOX", gmailtest.SupportLabel)
	want[id] = id + " Order 1 from ada@example.org"
	id = g.Deliver("From: Bob <bob@example.org>\r\nSubject: Order 2\r\nMessage-ID: <o2@example.org>\r\n\r\nAnd mine?\r\n", gmailtest.SupportLabel)
	want[id] = id + " Order 2 from bob@example.org"
	g.Deliver("From: spam@example.org\r\nSubject: not support\r\n\r\n", "INBOX")

	st := openStore(t, dir)
	var runs []*routine.Run
	for deadline := time.Now().Add(10 * time.Second); len(runs) < 2; time.Sleep(20 * time.Millisecond) {
		var err error
		if runs, err = st.RunList(context.Background(), &store.RunListParams{Routine: "gmail-ack", States: []routine.State{routine.StateSucceeded}}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs succeeded, want 2:\n%s%s", len(runs), d.stdout.String(), d.stderr.String())
		}
	}
	time.Sleep(1200 * time.Millisecond) // one more poll: room for a duplicate
	all, err := st.RunList(context.Background(), &store.RunListParams{Routine: "gmail-ack"})
	if err != nil || len(all) != 2 {
		t.Fatalf("%d runs (%v), want 2", len(all), err)
	}
	got := map[string]string{}
	for _, r := range all {
		var ev struct {
			GmailID string `json:"gmail_id"`
		}
		if err := json.Unmarshal(r.Trigger.Payload, &ev); err != nil || r.Trigger.Kind != "email" {
			t.Fatalf("run %s: trigger %s %s (%v)", r.ID, r.Trigger.Kind, r.Trigger.Payload, err)
		}
		got[ev.GmailID] = routine.OutputText(waitRun(t, d, r.ID).Steps[0].Outputs["got"])
	}
	if !maps.Equal(got, want) {
		t.Fatalf("outputs %v, want %v", got, want)
	}
	for id := range want {
		if l := g.Labels(id); slices.Contains(l, "UNREAD") {
			t.Errorf("message %s still unread: %v", id, l)
		}
	}
	logs := d.stdout.String() + d.stderr.String()
	for _, secret := range []string{gmailtest.ClientSecret, gmailtest.RefreshToken, "ya29."} {
		if strings.Contains(logs, secret) {
			t.Errorf("the daemon's output shows %q:\n%s", secret, logs)
		}
	}
}
