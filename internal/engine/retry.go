package engine

import (
	"math/rand/v2"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Retry defaults; spec applies the same ones, these cover routines built in code.
const (
	defaultInitial = time.Second
	defaultMax     = time.Minute
)

// triesOf returns how many tries a step gets.
func triesOf(r *routine.Retry) int {
	if r == nil || r.Attempts < 1 {
		return 1
	}
	return r.Attempts
}

// backoff returns how long to wait before try number next (2, 3, …):
// exponential (initial·2^(n-2)), linear (initial·(n-1)) or constant, capped
// at max, and with full jitter (a uniform random wait up to that delay)
// unless jitter is off.
func backoff(r *routine.Retry, next int) time.Duration {
	initial, limit := r.Initial.D(), r.Max.D()
	if initial <= 0 {
		initial = defaultInitial
	}
	if limit <= 0 {
		limit = defaultMax
	}
	n := next - 1 // retries so far, ≥ 1
	var d time.Duration
	switch r.Backoff {
	case routine.BackoffConstant:
		d = initial
	case routine.BackoffLinear:
		d = initial * time.Duration(n)
	default:
		d = initial
		for i := 1; i < n && d < limit; i++ {
			d *= 2
		}
	}
	if d > limit || d <= 0 {
		d = limit
	}
	if r.Jitter == nil || *r.Jitter {
		d = time.Duration(rand.Int64N(int64(d) + 1))
	}
	return d
}

// maxRetryAfter bounds the wait another system may ask for (Retry-After)
// before a retry: past it, the step's own backoff decides.
const maxRetryAfter = time.Hour

// retryDelay is the wait before try next: the backoff, or the wait the
// failed try's system asked for when that is longer (up to maxRetryAfter).
func retryDelay(r *routine.Retry, next int, failed *routine.ErrorPayload) time.Duration {
	delay := backoff(r, next)
	if after := time.Duration(failed.RetryAfterMs) * time.Millisecond; after > delay && after <= maxRetryAfter {
		return after
	}
	return delay
}
