package metrics

import (
	"errors"

	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/secrets"
)

// The reasons of routines_trigger_rejected_total: why a firing or a
// request of a trigger queued no run.
const (
	// ReasonNotFound: no routine has that webhook path, Slack command or
	// name.
	ReasonNotFound = "not_found"
	// ReasonBadSignature: a webhook's HMAC or a Slack request's signature
	// did not verify (or was missing, or stale).
	ReasonBadSignature = "bad_signature"
	// ReasonUnauthorized: an API call or event without the daemon's token.
	ReasonUnauthorized = "unauthorized"
	// ReasonSecretUnavailable: the signing secret did not resolve.
	ReasonSecretUnavailable = "secret_unavailable"
	// ReasonBodyTooLarge: the body was over the 1 MiB a request may send.
	ReasonBodyTooLarge = "body_too_large"
	// ReasonBusy: the daemon was reading too many bodies at once, or
	// shutting down (503).
	ReasonBusy = "busy"
	// ReasonBadRequest: a malformed body, input, or parameter (400).
	ReasonBadRequest = "bad_request"
	// ReasonFiltered: a webhook's events: filter left the delivery out.
	ReasonFiltered = "filtered"
	// ReasonQueueFull: the backlog was at --max-queued (429).
	ReasonQueueFull = "queue_full"
	// ReasonNamespaceFull: the routine's namespace had as many runs
	// queued as its max_queued allows (429).
	ReasonNamespaceFull = "namespace_full"
	// ReasonRateLimited: the caller's token, or the webhook path, Slack
	// commands' path or event name, was past its rate limit (429).
	ReasonRateLimited = "rate_limited"
	// ReasonOverlap: a tick of a schedule with overlap: skip, while a run
	// of its routine was queued or running.
	ReasonOverlap = "overlap"
	// ReasonDeduplicated: the firing folded into an earlier run with its
	// dedupe key.
	ReasonDeduplicated = "deduplicated"
	// ReasonBudget: a budget of the routine's tag is spent, with
	// on_exceed: stop (docs/costs.md).
	ReasonBudget = "budget"
	// ReasonError: the queue could not record the run (the store failed).
	ReasonError = "error"
)

// Rejected counts a firing or request of a trigger of kind that queued no
// run of routineName ("" when it named no known routine), for reason.
func (m *Metrics) Rejected(kind, routineName, reason string) {
	m.rejected.WithLabelValues(kind, routineName, reason).Inc()
}

// Skipped counts a tick of a schedule (kind cron or every) of
// routineName that overlap: skip left out; it is the schedules' observer
// (trigger.SourceEnv.Skipped).
func (m *Metrics) Skipped(routineName, kind string) {
	m.Rejected(kind, routineName, ReasonOverlap)
}

// Enqueued counts what the queue made of a request: a run queued, folded
// into an earlier one (deduped), or nothing (err). It is the queue's
// observer (scheduler.Queue.OnEnqueued).
func (m *Metrics) Enqueued(req *scheduler.Request, deduped bool, err error) {
	kind, name := req.Trigger.Kind, req.Routine.Name
	switch {
	case errors.Is(err, scheduler.ErrRefused):
		m.Rejected(kind, name, ReasonBudget)
	case err != nil:
		m.Rejected(kind, name, ReasonError)
	case deduped:
		m.Rejected(kind, name, ReasonDeduplicated)
	default:
		m.accepted.WithLabelValues(kind, name).Inc()
	}
}

// SecretResolved counts one resolution of a secret of routineName by
// provider: ok, not_found (not set anywhere it was looked for), or error.
// It is the secrets resolver's observer (secrets.Resolver.OnResolved).
func (m *Metrics) SecretResolved(routineName, provider string, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, secrets.ErrNotFound):
		outcome = "not_found"
	default:
		outcome = "error"
	}
	m.secrets.WithLabelValues(routineName, provider, outcome).Inc()
}
