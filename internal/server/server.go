package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/cost"
	"github.com/routines-dev/routines/internal/events"
	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/repeat"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/server/dashboard"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/tracing"
	"github.com/routines-dev/routines/internal/trigger"
)

// Executions tells when the execution of a run in this process ends;
// *scheduler.Scheduler does.
type Executions interface {
	// Watch returns a channel closed when an execution of run id ends,
	// and a func that releases it.
	Watch(id string) (ended <-chan struct{}, stop func())
}

// Routines finds the routines the daemon knows; *scheduler.Catalog is one.
type Routines interface {
	Get(name string) (*routine.Routine, bool)
	All() []*routine.Routine
}

// Config is what a Server is built from. Store, Queue and Routines are required.
type Config struct {
	Store store.Store
	Queue *scheduler.Queue
	// Executions, when set, wakes a request waiting for a run (?wait=) as
	// soon as its execution here ends, rather than at the next poll.
	Executions Executions
	Routines   Routines
	// Writes, when set, tells when the store's storage refuses writes:
	// GET /readyz then answers 503.
	Writes *store.Writability
	// Token, when set, opens /v1 as "Authorization: Bearer <token>", as an
	// admin of the default namespace (serve --token, server --token).
	Token string
	// Teams makes the tokens of the store open /v1 too, each with its
	// role and namespace (access.go). Without Token or Teams the API is
	// open: a local daemon's.
	Teams bool
	// MaxQueued bounds the backlog: past it new runs get 429. 100000 when 0.
	MaxQueued int
	// Secret resolves a secret a routine declares, in its namespace, for
	// the {{NAME}} of its webhook secret: *secrets.Resolver's Lookup. When
	// nil, the daemon's environment.
	Secret trigger.SecretLookup
	Logger *slog.Logger
	// Limits are the timeouts and caps against clients that would starve
	// the daemon (limits.go); zero fields are off.
	Limits Limits
	// RateLimits bound the requests of each token and to each ingress
	// path (ratelimit.go); zero fields are off.
	RateLimits RateLimits
	// Problems is where the webhooks and Slack commands that cannot work
	// report it, for GET /v1/status; the daemon shares it with its
	// triggers. A registry of the server's own when nil.
	Problems *Problems
	// Project is the project directory, named in what the log tells the
	// operator to do (run `routines secrets set` there).
	Project string
	// Deployer takes pushed routines (remote mode); nil: the daemon
	// serves the files of its project, and refuses pushes.
	Deployer Deployer
	// Vault is where /v1/secrets stores secrets; without one those
	// endpoints answer 501.
	Vault Vault
	// Fleet says runs are executed by the workers of a deployment (remote
	// mode), which a queued run may wait for: GET /v1/runs/<id> then says
	// why no live worker in the store's registry takes it.
	Fleet bool
	// Metrics counts the requests of triggers refused here and serves
	// GET /metrics (behind Token, when one is set); metrics of the
	// server's own when nil.
	Metrics *metrics.Metrics
	// Prices price the runs of GET /v1/costs; nil: zero rates, in USD.
	Prices *cost.Prices
	// Budgets, when set, are the per-tag budgets GET /v1/costs reports;
	// the daemon has the Queue refuse the runs of spent ones.
	Budgets *cost.Budgets
	// Dashboard is what the dashboard at / shows beyond the store: the
	// runs' artifacts, costs and alerts, when the daemon has them. Its
	// costs are priced with Prices and Budgets when it has none.
	Dashboard dashboard.Sources
}

// Server serves the API and webhooks. It is an http.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	draining atomic.Bool
	// stopping ends with Drain: the streams of runs' logs end with it.
	stopping context.Context
	stop     context.CancelFunc
	backlog  backlog
	// ceilings caches the max_queued of namespaces and the estimates of
	// their queued runs.
	ceilings queuedCeilings
	bodies   bodyBudget
	rates    *rateLimiter
	// events publishes the events posted to /v1/events, through Queue to
	// the Routines that listen to them.
	events   *events.Publisher
	problems *Problems
	// repeats keeps the warnings a caller can repeat at will (a refused
	// signature, a secret not set) to one, then one at backoff.
	repeats *repeat.Limiter
	metrics *metrics.Metrics
	// tokens caches the tokens of the store that opened recent requests.
	tokens tokenCache
}

// backlogRecount is how long a count of the queued runs is trusted before
// full counts them again: 100 ms, or 10 times what the last count took
// when that is longer (a long backlog takes long to count).
const backlogRecount = 100 * time.Millisecond

// backlog is the estimate of the queued runs that full checks against
// MaxQueued: the count of the store, plus the runs queued through this
// server since. Counting is a walk of the queued runs in the index
// (O(backlog)); done for every request it was most of the daemon's CPU
// under load.
type backlog struct {
	mu    sync.Mutex
	n     int
	at    time.Time     // of the last count; zero: never counted
	trust time.Duration // how long that count is trusted
}

// New returns a server built from cfg.
func New(cfg Config) *Server {
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 100000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Problems == nil {
		cfg.Problems = NewProblems(nil)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(metrics.Config{Logger: cfg.Logger})
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), bodies: bodyBudget{max: cfg.Limits.MaxBodyInFlight}, rates: newRateLimiter(cfg.RateLimits),
		problems: cfg.Problems, repeats: repeat.New(nil), events: events.New(cfg.Routines, cfg.Queue, cfg.Logger), metrics: cfg.Metrics}
	s.stopping, s.stop = context.WithCancel(context.Background())
	if cfg.Teams {
		s.watchRevocations()
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	// /metrics tells of every namespace's routines: the deployment's
	// operators' (a token of the default namespace; a viewer's will do
	// for a scraper).
	s.mux.Handle("GET /metrics", s.allow(store.RoleViewer, "", operators(cfg.Metrics.Handler())))
	s.routeRemote()
	s.mux.HandleFunc("POST /hooks/{path...}", s.hook)
	s.mux.HandleFunc("POST /slack/commands", s.slackCommand)
	// Unknown paths of the API and of hooks answer JSON; the others are
	// the dashboard's.
	for _, prefix := range []string{"/v1/", "/hooks/", "/slack/"} {
		s.mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		})
	}
	sources := cfg.Dashboard
	if sources.Costs == nil {
		sources.Costs = dashboard.Priced(cfg.Prices, cfg.Budgets)
	}
	s.mux.Handle("/", dashboard.New(dashboard.Config{
		Store: cfg.Store, Routines: cfg.Routines, API: s.mux, Token: cfg.Token, Logger: cfg.Logger, Sources: sources,
		Authenticate: s.authenticator(),
		NextFire: func(ctx context.Context, rt *routine.Routine, now time.Time) *time.Time {
			return NextFire(ctx, cfg.Store, rt, now)
		},
	}))
	return s
}

// Drain makes the server refuse new work with 503, and ends the streams
// of runs' logs, for a shutdown.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.stop()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.rejectedRequest(r, metrics.ReasonBusy)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the daemon is shutting down")
		return
	}
	// A caller's traceparent: the run it queues (a webhook, a Slack
	// command, an event, the API) continues the caller's trace.
	if ctx := tracing.Extract(r.Context(), r.Header); ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	if s.rateLimited(w, r) {
		return
	}
	s.withBodyBudget(w, r, s.mux)
}

// full reports whether a run of each routine of queuing may not be
// queued now, and answers 429 if so: when the namespace of one has a
// max_queued (ceilings.go) and that many runs queued, or when the
// backlog is at MaxQueued. Otherwise it counts the runs about to be
// queued. The queued runs are counted in the store at most every
// backlogRecount (or longer), and whenever the estimate says full, so a
// 429 always rests on a fresh count. The estimate never misses a run
// queued through this server (claimed runs make it high until the next
// count); runs queued otherwise (triggers, another process) are seen
// within backlogRecount. A refusal is counted as one of a request of a
// trigger of kind for rt.
func (s *Server) full(w http.ResponseWriter, r *http.Request, kind string, rt *routine.Routine, queuing ...*routine.Routine) bool {
	ns, limit, err := s.namespaceFull(r.Context(), queuing)
	ok := ns == ""
	if ok && err == nil {
		ok, err = s.backlog.admit(len(queuing), s.cfg.MaxQueued, func() (int, error) {
			return s.countQueued(r.Context(), nil)
		})
	}
	switch {
	case err != nil:
		s.rejected(kind, rt, metrics.ReasonError)
		writeFailure(w, r, err)
	case ns != "":
		s.rejected(kind, rt, metrics.ReasonNamespaceFull)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
			"namespace %s is at its ceiling of %d queued runs (max_queued); retry later, once some have started", ns, limit))
	case !ok:
		s.rejected(kind, rt, metrics.ReasonQueueFull)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "the queue is full ("+strconv.Itoa(s.cfg.MaxQueued)+" runs queued); retry later")
	}
	return err != nil || !ok
}

// admit reports whether adding runs may be queued under limit, and counts
// them in the estimate if so; count counts the queued runs in the store
// when the estimate is stale or says full (see full).
func (b *backlog) admit(adding, limit int, count func() (int, error)) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at.IsZero() || time.Since(b.at) > b.trust || b.n+adding > limit {
		start := time.Now()
		n, err := count()
		if err != nil {
			return false, err
		}
		b.n, b.at = n, time.Now()
		b.trust = max(backlogRecount, 10*b.at.Sub(start))
	}
	if b.n >= limit {
		return false, nil
	}
	b.n += adding
	return true, nil
}

// countQueued counts the queued runs in the store: of routines only,
// when not nil.
func (s *Server) countQueued(ctx context.Context, routines []string) (int, error) {
	n, err := s.cfg.Store.RunCount(ctx, &store.RunCountParams{Routines: routines, States: []routine.State{routine.StateQueued}})
	return n[routine.StateQueued], err
}

// enqueue queues a run and answers 202 with its id, or, with ?wait=D,
// waits up to D for the run to end and answers 200 with the run.
func (s *Server) enqueue(w http.ResponseWriter, r *http.Request, rt *routine.Routine, trig routine.TriggerInfo, input map[string]string) {
	s.enqueueRequest(w, r, &scheduler.Request{Routine: rt, Trigger: trig, Input: input})
}

// enqueueRequest is enqueue of any request (a replay).
func (s *Server) enqueueRequest(w http.ResponseWriter, r *http.Request, req *scheduler.Request) {
	wait, ok := s.parseWait(w, r)
	if !ok || s.full(w, r, req.Trigger.Kind, req.Routine, req.Routine) {
		return
	}
	run, _, err := s.cfg.Queue.Enqueue(r.Context(), req)
	if err != nil {
		writeEnqueueError(w, r, err)
		return
	}
	if wait == 0 {
		writeJSON(w, http.StatusAccepted, api.Queued{RunID: run.ID})
		return
	}
	s.waitRun(w, r, run.ID, wait)
}

// parseWait reads ?wait=D, how long the request may wait for a run's
// end (0 without it), and gives the answer that long; it answers 400 and
// returns false when D is not a duration.
func (s *Server) parseWait(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		writeError(w, http.StatusBadRequest, "wait="+v+": want a duration such as 30s")
		return 0, false
	}
	s.extendDeadlines(w, d)
	return d, true
}

// waitRun waits until the run is final or the wait is over, woken by the
// queue when it can tell, else polling the store;
// an unfinished run is answered 202 with its current state.
func (s *Server) waitRun(w http.ResponseWriter, r *http.Request, id string, wait time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	// Runs executed in this process end with a signal, at once; the
	// ticker covers runs executed elsewhere.
	for {
		ended, stop := (<-chan struct{})(nil), func() {}
		if s.cfg.Executions != nil {
			ended, stop = s.cfg.Executions.Watch(id)
		}
		run, err := s.cfg.Store.RunGet(context.WithoutCancel(ctx), id)
		if err != nil {
			stop()
			writeFailure(w, r, err)
			return
		}
		if run.State.Final() {
			stop()
			s.writeRun(w, r, http.StatusOK, run)
			return
		}
		select {
		case <-ctx.Done():
			stop()
			s.writeRun(w, r, http.StatusAccepted, run)
			return
		case <-ended:
		case <-t.C:
		}
		stop()
	}
}

// writeRun answers with a run and its steps, the shape of `routines show -o json`.
func (s *Server) writeRun(w http.ResponseWriter, r *http.Request, code int, run *routine.Run) {
	steps, err := s.cfg.Store.StepList(context.WithoutCancel(r.Context()), run.ID)
	if err != nil {
		writeFailure(w, r, err)
		return
	}
	d := api.NewRunDetail(run, steps)
	if s.cfg.Fleet && run.State == routine.StateQueued {
		d.Waiting = s.waiting(r.Context(), run)
	}
	writeJSON(w, code, d)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	if run, ok := s.findRun(w, r); ok {
		s.writeRun(w, r, http.StatusOK, run)
	}
}

// findRun finds the run whose id, or unique prefix of one, is in the path,
// among the runs the caller sees; it answers 400, 404 or 500 when it
// cannot.
func (s *Server) findRun(w http.ResponseWriter, r *http.Request) (*routine.Run, bool) {
	run, err := store.RunGetIn(r.Context(), s.cfg.Store, r.PathValue("id"), s.scope(r))
	var ambiguous *routine.AmbiguousIDError
	switch {
	case errors.As(err, &ambiguous):
		writeError(w, http.StatusBadRequest, ambiguous.Error()+": give more of the id")
		return nil, false
	case errors.Is(err, routine.ErrNotFound) || err == nil && !s.sees(r, run.Routine):
		writeError(w, http.StatusNotFound, "no run "+r.PathValue("id"))
		return nil, false
	case err != nil:
		writeFailure(w, r, err)
		return nil, false
	}
	return run, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// unwritableRetry is the Retry-After, in seconds, of a request refused
// because the store cannot write: freeing a full disk takes an operator
// a while, and the daemon writes again on its own once it is done.
const unwritableRetry = 30

// writeFailure answers a request that an error of the daemon's own
// failed: 503 with Retry-After when the store cannot write (nothing of
// the request was recorded, and the same request goes through once the
// store writes again), else 500. The store's path is told to the API's
// callers only, not to those of the public webhooks and Slack commands.
func writeFailure(w http.ResponseWriter, r *http.Request, err error) {
	msg, ok := unwritable(err, strings.HasPrefix(r.URL.Path, "/v1/"))
	if !ok {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(unwritableRetry))
	writeError(w, http.StatusServiceUnavailable, msg+"; nothing was recorded: retry later")
}

// unwritable says, when err is a write the store's storage refused, that
// the store cannot write and why, and where when withPath.
func unwritable(err error, withPath bool) (msg string, ok bool) {
	var u *store.UnwritableError
	if !errors.As(err, &u) {
		return "", false
	}
	msg = store.ErrUnwritable.Error() + ": " + u.Cause
	if withPath {
		msg += " at " + u.Path
	}
	return msg, true
}

// writeError answers with the JSON error shape every endpoint uses.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
