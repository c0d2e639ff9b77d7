package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/trigger"
)

// The targets of a record's deliveries.
const (
	TargetSlack   = "slack"
	TargetWebhook = "webhook"
)

// Bounds of deliveries.
const (
	// deliveryTimeout bounds one post to Slack or a webhook.
	deliveryTimeout = 10 * time.Second
	// deliveryLease is how long a claimed record is this evaluator's:
	// longer than its posts take, after which another evaluator takes it
	// over (this one died).
	deliveryLease = 4 * deliveryTimeout
	// maxRetryWait bounds the wait before another try of a failed
	// delivery, which doubles from the interval at each try.
	maxRetryWait = 10 * time.Minute
	// giveUpAfter is how long after its transition a record's deliveries
	// are tried: an alert that cannot notify for a day is in the records
	// and the log, not in a queue that grows.
	giveUpAfter = 24 * time.Hour
)

// Deliver sends the notifications that are due, one record at a time
// (claimed in the store, so that of several evaluators one sends each),
// until none is, and returns how many records it tried.
func (e *Evaluator) Deliver(ctx context.Context) int {
	n := 0
	for ctx.Err() == nil {
		list, err := e.cfg.Store.AlertClaim(ctx, &store.AlertClaimParams{Holder: e.cfg.Holder, Now: e.clock.Now(), Lease: deliveryLease, Limit: 1})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Log(ctx, store.LogLevel(err, slog.LevelWarn), "alerts: cannot claim notifications to send; the next evaluation tries again", "err", err)
			}
			return n
		}
		if len(list) == 0 {
			return n
		}
		e.deliverRecord(ctx, list[0])
		n++
	}
	return n
}

// deliverRecord sends the deliveries of rec not sent yet and records how
// it went.
func (e *Evaluator) deliverRecord(ctx context.Context, rec *routine.AlertRecord) {
	r, a := e.alertOf(rec)
	ds := make([]routine.AlertDelivery, len(rec.Deliveries))
	copy(ds, rec.Deliveries)
	done := true
	for i := range ds {
		d := &ds[i]
		if d.OK {
			continue
		}
		var err error
		if a == nil {
			err = errors.New("the alert is no longer in the routine: not sent")
		} else {
			err = e.send(ctx, r, a, rec, d.Target)
		}
		d.At, d.OK, d.Error = e.clock.Now(), err == nil, ""
		args := []any{"routine", rec.Routine, "alert", rec.Alert, "state", rec.State, "target", d.Target, "alert_id", rec.ID, "attempt", rec.Attempts}
		if err != nil {
			d.Error = err.Error()
			done = false
			e.log.Warn("alert notification failed", append(args, "err", d.Error)...)
		} else {
			e.log.Info("alert notification sent", args...)
		}
	}
	now := e.clock.Now()
	if !done && (a == nil || now.Sub(rec.At) >= giveUpAfter) {
		done = true
		e.log.Warn("alert notification given up", "routine", rec.Routine, "alert", rec.Alert, "alert_id", rec.ID, "attempts", rec.Attempts)
	}
	wait := min(e.cfg.Interval<<min(rec.Attempts-1, 20), maxRetryWait)
	err := e.cfg.Store.AlertDelivered(context.WithoutCancel(ctx), &store.AlertDeliveredParams{
		ID: rec.ID, Holder: e.cfg.Holder, Deliveries: ds, Done: done, NextTry: now.Add(wait),
	})
	if err != nil {
		e.log.Log(ctx, store.LogLevel(err, slog.LevelWarn), "alerts: cannot record a notification's outcome; it may be sent again", "routine", rec.Routine, "alert", rec.Alert, "alert_id", rec.ID, "err", err)
	}
}

// alertOf finds the routine and the alert of a record; a nil alert when
// either is gone.
func (e *Evaluator) alertOf(rec *routine.AlertRecord) (*routine.Routine, *routine.Alert) {
	r, ok := e.cfg.Routines.Get(rec.Routine)
	if !ok {
		return nil, nil
	}
	for i := range r.Alerts {
		if r.Alerts[i].Name == rec.Alert {
			return r, &r.Alerts[i]
		}
	}
	return r, nil
}

// send delivers rec to one target of alert a of routine r, through the
// daemon's step kind of that target, with the credentials r declares.
// Its error holds no secret.
func (e *Evaluator) send(ctx context.Context, r *routine.Routine, a *routine.Alert, rec *routine.AlertRecord, target string) error {
	credential := a.Notify.SlackToken
	if target == TargetWebhook {
		credential = a.Notify.Webhook
	}
	value, err := trigger.Credentials(r, e.cfg.Secret)(ctx, credential)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	action := &routine.Action{}
	kind := "slack"
	if target == TargetSlack {
		action.Slack = &routine.SlackAction{Token: value, Channel: a.Notify.Slack, Text: e.slackText(rec), BaseURL: a.Notify.SlackBaseURL}
	} else {
		kind = "http"
		action.HTTP = &routine.HTTPAction{Method: "POST", URL: value, JSON: e.payload(rec), Timeout: routine.Duration(deliveryTimeout)}
	}
	k := e.cfg.Kinds[kind]
	if k == nil {
		return fmt.Errorf("%s: the daemon has no %s step kind to send with", target, kind)
	}
	var redact func(string) string
	if red := secrets.NewRedactor([]string{value}); red != nil && value != credential {
		redact = red.Redact
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	_, err = k.Execute(ctx, &stepkind.Execution{
		StepID: "alert", Routine: r.Name, Action: action, Stdout: io.Discard, Stderr: io.Discard, Now: e.clock.Now, Redact: redact,
	})
	if err != nil && redact != nil {
		return errors.New(redact(err.Error()))
	}
	return err
}

// Payload is the JSON body a webhook of an alert receives, once when the
// alert starts firing and once when it clears.
type Payload struct {
	Routine   string           `json:"routine"`
	Alert     string           `json:"alert"`
	State     string           `json:"state"` // firing or ok
	When      string           `json:"when"`
	Metric    string           `json:"metric"`
	Value     float64          `json:"value"`      // in the metric's unit: seconds, a ratio, runs
	ValueText string           `json:"value_text"` // as a threshold is written: 3.2s, 7%, 4; "no runs"
	Threshold float64          `json:"threshold"`
	Runs      int64            `json:"runs"` // runs the value is computed from
	Over      routine.Duration `json:"over"`
	At        time.Time        `json:"at"`         // of this transition
	StartedAt time.Time        `json:"started_at"` // when the alert started firing
	URL       string           `json:"url,omitempty"`
	Text      string           `json:"text"` // a sentence that says it all
	ID        int64            `json:"id"`   // of the record: the same in a retry
}

// payload is the webhook body of rec.
func (e *Evaluator) payload(rec *routine.AlertRecord) Payload {
	return Payload{
		Routine: rec.Routine, Alert: rec.Alert, State: rec.State, When: rec.When, Metric: rec.Metric,
		Value: rec.Value, ValueText: rec.ValueText(), Threshold: rec.Threshold, Runs: rec.Runs, Over: rec.Over,
		At: rec.At, StartedAt: rec.StartedAt, URL: e.runsURL(rec.Routine), Text: describe(rec), ID: rec.ID,
	}
}

// runsURL is the dashboard's list of the runs of a routine, or "".
func (e *Evaluator) runsURL(name string) string {
	if e.cfg.DashboardURL == "" {
		return ""
	}
	return strings.TrimSuffix(e.cfg.DashboardURL, "/") + "/ui/runs?routine=" + url.QueryEscape(name)
}

// describe says what happened in one sentence.
func describe(rec *routine.AlertRecord) string {
	what := "alert " + rec.Alert
	if rec.Alert != rec.When {
		what += " (" + rec.When + ")"
	}
	measured := fmt.Sprintf("%s %s over the last %s (%s)", rec.Metric, rec.ValueText(), rec.Over, plural(rec.Runs, "run"))
	if rec.Runs == 0 {
		measured = fmt.Sprintf("no run ended in the last %s", rec.Over)
	}
	if rec.State == routine.AlertFiring {
		return fmt.Sprintf("%s: %s is firing: %s", rec.Routine, what, measured)
	}
	return fmt.Sprintf("%s: %s cleared after %s: %s", rec.Routine, what, rec.At.Sub(rec.StartedAt).Round(time.Second), measured)
}

// slackText is the Slack message of rec: the sentence, escaped as
// Slack's mrkdwn wants, with a link to the runs.
func (e *Evaluator) slackText(rec *routine.AlertRecord) string {
	icon := ":rotating_light:"
	if rec.State == routine.AlertOK {
		icon = ":white_check_mark:"
	}
	text := icon + " " + slackEscape.Replace(describe(rec))
	if u := e.runsURL(rec.Routine); u != "" {
		text += " <" + u + "|runs>"
	}
	return text
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
