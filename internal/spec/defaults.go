package spec

import (
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// The defaults of a valid routine, applied after validation so that the
// engine never sees an unset field:
//
//   - parallelism: the number of CPUs × 4
//   - every step and on_failure step gets a retry: 1 attempt, exponential
//     backoff from 1s up to 1m, with jitter
//   - a run step (and a run compensate) runs with shell bash
//   - a cron trigger uses the UTC time zone
//   - cron and every triggers skip a tick while a run is active (overlap
//     skip) and do not catch up ticks missed while down (catchup none)
//   - an email trigger watches INBOX, and polls every 30s when the server
//     has no IDLE; with gmail, it reads the account "me" and polls every 30s
//   - an alert is named by its when, watches the last 15m, and posts to
//     Slack with the token {{SLACK_BOT_TOKEN}}
const (
	defaultAttempts   = 1
	defaultBackoff    = routine.BackoffExponential
	defaultInitial    = routine.Duration(time.Second)
	defaultMaxDelay   = routine.Duration(time.Minute)
	defaultShell      = "bash"
	defaultTimezone   = "UTC"
	defaultOverlap    = "skip"
	defaultCatchup    = "none"
	parallelismPerCPU = 4
)

// applyDefaults fills the unset fields of a valid routine; cpus is the
// number of CPUs the parallelism default is derived from.
func applyDefaults(r *routine.Routine, cpus int) {
	if r.Parallelism == 0 {
		r.Parallelism = cpus * parallelismPerCPU
	}
	for _, list := range [][]routine.Step{r.Steps, r.OnFailure} {
		for i := range list {
			s := &list[i]
			if s.Retry == nil {
				s.Retry = &routine.Retry{}
			}
			retryDefaults(s.Retry)
			actionDefaults(&s.Action)
			if s.Compensate != nil {
				actionDefaults(s.Compensate)
			}
		}
	}
	for i := range r.Triggers {
		t := &r.Triggers[i]
		switch t.Kind() {
		case "cron":
			if t.Timezone == "" {
				t.Timezone = defaultTimezone
			}
			fallthrough
		case "every":
			if t.Overlap == "" {
				t.Overlap = defaultOverlap
			}
			if t.Catchup == "" {
				t.Catchup = defaultCatchup
			}
		case "email":
			if t.Email.IMAP != nil && t.Email.Mailbox == "" {
				t.Email.Mailbox = routine.DefaultMailbox
			}
			if t.Email.Gmail != nil && t.Email.Gmail.User == "" {
				t.Email.Gmail.User = routine.DefaultGmailUser
			}
			if t.Email.Poll == 0 {
				t.Email.Poll = routine.DefaultEmailPoll
			}
		}
	}
	for i := range r.Alerts {
		a := &r.Alerts[i]
		a.Name = alertName(a)
		if a.Over == 0 {
			a.Over = routine.DefaultAlertOver
		}
		if a.Notify.Slack != "" && a.Notify.SlackToken == "" {
			a.Notify.SlackToken = routine.DefaultAlertSlackToken
		}
	}
}

func retryDefaults(rt *routine.Retry) {
	if rt.Attempts == 0 {
		rt.Attempts = defaultAttempts
	}
	if rt.Backoff == "" {
		rt.Backoff = defaultBackoff
	}
	if rt.Initial == 0 {
		rt.Initial = defaultInitial
	}
	if rt.Max == 0 {
		rt.Max = defaultMaxDelay
	}
	if rt.Jitter == nil {
		jitter := true
		rt.Jitter = &jitter
	}
}

func actionDefaults(a *routine.Action) {
	if a.Kind() == "run" && a.Shell == "" {
		a.Shell = defaultShell
	}
}
