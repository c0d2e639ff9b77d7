package server

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
)

// RateLimits bound how often one caller may ask: each API token, and
// each ingress path (a webhook's path, the Slack commands' path, an
// event's name), has a token bucket of its own. A request past its
// bucket gets 429 with Retry-After. The buckets are this process's: with
// replicas behind a load balancer, each one allows the rate.
type RateLimits struct {
	// Token is the rate of the requests that carry one Authorization
	// header value (a bearer token, right or wrong).
	Token Rate
	// Ingress is the rate of the requests to one webhook path, to
	// /slack/commands, or of one event name.
	Ingress Rate
}

// Rate is a token bucket: Burst requests at once, refilled at PerSecond.
// The zero Rate limits nothing.
type Rate struct {
	PerSecond float64
	Burst     int
}

// rateUnits are the units a rate may be written in.
var rateUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseRate reads a rate as the flags write it: N/s, N/m or N/h, then
// optionally ,burst=B (B defaults to N, at least 1); "off" or "0" for
// none.
func ParseRate(s string) (Rate, error) {
	bad := func(why string) (Rate, error) {
		return Rate{}, fmt.Errorf("rate %q: %s; write it as N/s, N/m or N/h with an optional ,burst=B, such as 50/s,burst=100, or off", s, why)
	}
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	spec, burstSpec, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(strings.TrimSpace(spec), "/")
	per, known := rateUnits[unit]
	if !ok || !known {
		return bad("no unit")
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) {
		return bad("the count is not a positive number")
	}
	r := Rate{PerSecond: n / per.Seconds(), Burst: max(1, int(math.Ceil(n)))}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstSpec), "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b < 1 {
			return bad("the burst is not burst= and a whole number of at least 1")
		}
		r.Burst = b
	}
	return r, nil
}

// String writes r as ParseRate reads it, per second, else per minute,
// else per hour: whichever counts at least one.
func (r Rate) String() string {
	if r.PerSecond <= 0 {
		return "off"
	}
	n, unit := r.PerSecond, "s"
	if n < 1 {
		n, unit = n*60, "m"
	}
	if n < 1 {
		n, unit = n*60, "h"
	}
	return strconv.FormatFloat(math.Round(n*1e6)/1e6, 'f', -1, 64) + "/" + unit + ",burst=" + strconv.Itoa(r.Burst)
}

// maxBuckets bounds the buckets of one kind kept at once. Past it, the
// full ones (which a new bucket would equal) are dropped, and if none
// is, newcomers share one bucket: a flood of distinct callers is
// limited, and memory stays bounded (a bucket is about 100 bytes).
const maxBuckets = 10000

// sweepEvery is how often the full buckets are dropped in any case, so
// that those of callers gone do not stay.
const sweepEvery = time.Minute

// buckets are the token buckets of one kind of caller, by key.
type buckets struct {
	rate Rate

	mu       sync.Mutex
	m        map[string]*rate.Limiter
	overflow *rate.Limiter // shared by the newcomers past maxBuckets
	swept    time.Time
}

func newBuckets(r Rate) *buckets {
	if r.PerSecond <= 0 {
		return nil
	}
	return &buckets{rate: r, m: map[string]*rate.Limiter{}, overflow: r.limiter()}
}

func (r Rate) limiter() *rate.Limiter { return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst) }

// take takes a request's token from key's bucket at now; when there is
// none, it returns how long until there is one.
func (b *buckets) take(key string, now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	l := b.m[key]
	if l == nil {
		if len(b.m) >= maxBuckets || now.Sub(b.swept) > sweepEvery {
			b.sweep(now)
		}
		if len(b.m) < maxBuckets {
			l = b.rate.limiter()
			b.m[key] = l
		} else {
			l = b.overflow
		}
	}
	b.mu.Unlock()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// sweep drops the buckets that are full again: b.mu is held.
func (b *buckets) sweep(now time.Time) {
	b.swept = now
	for k, l := range b.m {
		if l.TokensAt(now) >= float64(b.rate.Burst) {
			delete(b.m, k)
		}
	}
}

// rateLimiter holds the buckets of tokens and of ingress paths.
type rateLimiter struct {
	tokens, ingress *buckets
	// seed keys the hash that names a token's bucket: the buckets hold
	// no token, nor a hash that could be checked against one elsewhere.
	seed maphash.Seed
}

func newRateLimiter(l RateLimits) *rateLimiter {
	return &rateLimiter{tokens: newBuckets(l.Token), ingress: newBuckets(l.Ingress), seed: maphash.MakeSeed()}
}

// tokenKey names the bucket of the credentials of r: a keyed hash of its
// Authorization header; "" for a request without one. It needs no
// lookup, so a request is limited before its token is checked (guesses
// included). A token's id, once known, would name it as well: call
// tokenLimited with it where the token is looked up, instead.
func (rl *rateLimiter) tokenKey(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return ""
	}
	return strconv.FormatUint(maphash.String(rl.seed, h), 36)
}

// ingressKey names the bucket of a request to an ingress path: the kind
// of trigger and the path or event name, when a routine has it; all the
// paths no routine has share one bucket (a caller's made-up paths must
// not grow the map). "" for other requests.
func (s *Server) ingressKey(r *http.Request) string {
	kind, _ := s.ingress(r)
	switch kind {
	case TriggerWebhook:
		path := "/" + strings.Trim(strings.TrimPrefix(r.URL.Path, "/hooks/"), "/")
		if rt, _ := s.findHook(path); rt == nil {
			path = ""
		}
		return kind + ":" + path
	case TriggerSlackCommand:
		return kind
	case events.TriggerKind:
		name := strings.TrimPrefix(r.URL.Path, "/v1/events/")
		// Any namespace's listener gives the name a bucket of its own.
		if len(s.events.Listeners(name, "")) == 0 {
			name = ""
		}
		return kind + ":" + name
	}
	return ""
}

// rateLimited answers 429 with Retry-After when r is past the bucket of
// its ingress path or of its token, and reports whether it did.
// A limit that is off costs nothing: not even the key is made.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request) bool {
	if s.rates.ingress != nil {
		if key := s.ingressKey(r); key != "" {
			if d := s.rates.ingress.take(key, time.Now()); d > 0 {
				s.tooMany(w, r, d, "too many requests to "+r.URL.Path, s.rates.ingress.rate)
				return true
			}
		}
	}
	return s.rates.tokens != nil && s.tokenLimited(w, r, s.rates.tokenKey(r))
}

// tokenLimited answers 429 with Retry-After when the bucket of the token
// named key ("": none) is empty, and reports whether it did.
func (s *Server) tokenLimited(w http.ResponseWriter, r *http.Request, key string) bool {
	if key == "" || s.rates.tokens == nil {
		return false
	}
	if d := s.rates.tokens.take(key, time.Now()); d > 0 {
		s.tooMany(w, r, d, "too many requests with this token", s.rates.tokens.rate)
		return true
	}
	return false
}

// tooMany answers 429: what was limited, at which rate, and when to
// retry (whole seconds, at least one).
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, what string, limit Rate) {
	s.rejectedRequest(r, metrics.ReasonRateLimited)
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s (limit %s): retry after %ds", what, limit, secs))
}
