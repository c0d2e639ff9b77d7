package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/server/dashboard"
	"github.com/routines-dev/routines/internal/store"
)

// NewToken returns the value of a new API token: 32 random bytes, so that
// its sha256 (HashToken), which is all the store keeps, cannot be
// reversed; the prefix tells a reader (or a secret scanner) what it is.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "rt_" + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is what the store keeps of a token's value: its sha256, in hex.
// A salt or a slow hash would add nothing to a value of 256 random bits,
// and would cost every request.
func HashToken(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// The identities that are no token of the store.
const (
	// daemonToken is the name of Config.Token (serve --token, server
	// --token): an admin of the default namespace.
	daemonToken = "daemon-token"
	// localCaller is who calls a daemon that has no token at all: the
	// local daemon on loopback, an admin of the default namespace.
	localCaller = "local"
)

// caller returns who the request comes from, or answers 401 and returns
// nil. A request the dashboard forwards carries its session's caller.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) *store.Token {
	if c := dashboard.Caller(r.Context()); c != nil {
		return c
	}
	if s.cfg.Token == "" && !s.cfg.Teams {
		return &store.Token{Name: localCaller, Role: store.RoleAdmin, Namespace: store.DefaultNamespace}
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1 {
		return &store.Token{Name: daemonToken, Role: store.RoleAdmin, Namespace: store.DefaultNamespace}
	}
	msg := "missing or wrong API token: send Authorization: Bearer <token>"
	if ok && got != "" && s.cfg.Teams {
		t, err := s.Authenticate(r.Context(), got)
		if err == nil {
			return t
		}
		if !errors.Is(err, errBadToken) {
			writeError(w, http.StatusInternalServerError, "check the API token: "+err.Error())
			return nil
		}
		msg = err.Error()
	}
	s.rejectedRequest(r, metrics.ReasonUnauthorized)
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, http.StatusUnauthorized, msg)
	return nil
}

// errBadToken is the error of a token that opens nothing.
var errBadToken = errors.New("bad token")

// Authenticate returns the valid token of the store whose value is
// value. Expiry is judged on every call; the token is read from the
// store, or from the cache of the tokens of the last tokenTTL, which a
// revocation anywhere empties (tokenCache).
func (s *Server) Authenticate(ctx context.Context, value string) (*store.Token, error) {
	hash := HashToken(value)
	t, gen := s.tokens.get(hash)
	var err error
	if t == nil {
		if t, err = s.cfg.Store.TokenByHash(ctx, hash); err == nil {
			s.tokens.put(hash, t, gen)
		}
	}
	switch {
	case errors.Is(err, routine.ErrNotFound):
		return nil, fmt.Errorf("%w: unknown API token: send a token `routines tokens create` made", errBadToken)
	case err != nil:
		return nil, err
	case t.RevokedAt != nil:
		return nil, fmt.Errorf("%w: API token %s was revoked: ask an admin for a new one", errBadToken, t.Name)
	case !t.Valid(time.Now()):
		return nil, fmt.Errorf("%w: API token %s expired at %s: ask an admin for a new one", errBadToken, t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	return t, nil
}

// callerKey holds the request's caller in its context, for the handlers.
type callerKey struct{}

// callerOf returns the caller allow let through.
func callerOf(r *http.Request) *store.Token {
	return r.Context().Value(callerKey{}).(*store.Token)
}

// note is what a handler tells the trail of the action it serves: what
// it acted on, when the path does not say.
type note struct{ target string }

type noteKey struct{}

// noteTarget records what the action of r acted on.
func noteTarget(r *http.Request, target string) {
	if n, ok := r.Context().Value(noteKey{}).(*note); ok {
		n.target = target
	}
}

// allow lets through the callers whose role is role or above; with an
// action, it records the request in the trail of actions, whatever its
// outcome. A caller below role gets 403 (what it may do is no secret of
// another namespace's).
func (s *Server) allow(role, action string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.caller(w, r)
		if c == nil {
			return
		}
		ctx := context.WithValue(r.Context(), callerKey{}, c)
		if action == "" {
			if store.RoleRank(c.Role) < store.RoleRank(role) {
				writeError(w, http.StatusForbidden, denied(c, role))
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		n := &note{target: pathTarget(r)}
		rec := &statusWriter{ResponseWriter: w}
		if store.RoleRank(c.Role) < store.RoleRank(role) {
			writeError(rec, http.StatusForbidden, denied(c, role))
		} else {
			next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, noteKey{}, n)))
		}
		s.record(r, c, action, n.target, rec)
	})
}

// pathTarget is what the path of r names: a routine, a run, a secret or a
// token.
func pathTarget(r *http.Request) string {
	for _, k := range []string{"name", "id", "ref"} {
		if v := r.PathValue(k); v != "" {
			return v
		}
	}
	return ""
}

func denied(c *store.Token, role string) string {
	return fmt.Sprintf("token %s has role %s: this needs role %s or above (ask an admin for such a token)", c.Name, c.Role, role)
}

// record appends an action to the trail. A failure to record is logged,
// not answered: the action is done.
func (s *Server) record(r *http.Request, c *store.Token, action, target string, rec *statusWriter) {
	a := &store.Action{
		Time: time.Now().UTC(), Actor: c.Name, Role: c.Role, Namespace: c.Namespace, Source: sourceAddr(r),
		Action: action, Target: target, Outcome: store.OutcomeOK,
	}
	switch code := rec.status(); {
	case code == http.StatusForbidden:
		a.Outcome, a.Detail = store.OutcomeDenied, rec.detail()
	case code >= 400:
		a.Outcome, a.Detail = store.OutcomeFailed, rec.detail()
	}
	err := s.cfg.Store.ActionAppend(context.WithoutCancel(r.Context()), a)
	// An action refused because the store cannot write is not recorded
	// either; the outage is logged once, by whoever met it first, not
	// once per refused request.
	if err != nil && !(errors.Is(err, store.ErrUnwritable) && rec.status() == http.StatusServiceUnavailable) {
		s.log.Error("record an action in the audit trail", "action", action, "actor", c.Name, "err", err)
	}
}

// sourceAddr is the client's address, without its port.
func sourceAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// statusWriter keeps the status of an answer, and the start of the body
// of an error, for the trail.
type statusWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.code >= 400 && w.body.Len() < maxDetail {
		w.body.Write(p[:min(len(p), maxDetail-w.body.Len())])
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines of
// waiting requests, flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// maxDetail bounds the error message a record keeps.
const maxDetail = 300

// detail is the status and error message of a failed answer. Error
// messages never hold a secret's value (setSecret quotes none).
func (w *statusWriter) detail() string {
	msg := strings.TrimSpace(w.body.String())
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(msg), &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Sprintf("%d %s", w.status(), msg)
}

// namespaceOf is the namespace of the routine called name: the one it
// was pushed to; the default one for a routine of a project's files or
// one not served.
func (s *Server) namespaceOf(name string) string {
	if rt, ok := s.cfg.Routines.Get(name); ok {
		return cmpNamespace(rt.Namespace)
	}
	return store.DefaultNamespace
}

// sees reports whether the caller of r may see the routine called name:
// one of its namespace. What it may not see answers 404, as what does
// not exist, so that names do not leak across namespaces.
func (s *Server) sees(r *http.Request, name string) bool {
	return s.namespaceOf(name) == callerOf(r).Namespace
}

// visibleRoutine returns the served routine called name when the caller
// of r sees it.
func (s *Server) visibleRoutine(r *http.Request, name string) (*routine.Routine, bool) {
	rt, ok := s.cfg.Routines.Get(name)
	if !ok || !s.sees(r, name) {
		return nil, false
	}
	return rt, true
}

// scope returns the names of the routines the caller of r sees, or nil
// when it sees every run (a namespace that is the only one there is), for
// store.RunListParams.Routines and store.StatsParams.Routines.
func (s *Server) scope(r *http.Request) []string {
	ns := callerOf(r).Namespace
	names, others := []string{}, false
	for _, rt := range s.cfg.Routines.All() {
		if n := cmpNamespace(rt.Namespace); n == ns {
			names = append(names, rt.Name)
		} else {
			others = true
		}
	}
	if !others && ns == store.DefaultNamespace {
		return nil
	}
	return names
}

func cmpNamespace(ns string) string {
	if ns == "" {
		return store.DefaultNamespace
	}
	return ns
}

// narrow keeps of the routines asked for (every one when none is) those
// the caller of r sees; nil when it sees every one.
func (s *Server) narrow(r *http.Request, asked []string) []string {
	scope := s.scope(r)
	if scope == nil {
		return asked
	}
	if len(asked) == 0 {
		return scope
	}
	return slices.DeleteFunc(slices.Clone(asked), func(name string) bool { return !s.sees(r, name) })
}

// authenticator is what the dashboard logs in with beyond Token: the
// tokens of the store, when the server has them.
func (s *Server) authenticator() func(ctx context.Context, value string) (*store.Token, error) {
	if !s.cfg.Teams {
		return nil
	}
	return s.Authenticate
}

// tokenTTL is how long a token read from the store is trusted without
// reading it again. A revocation does not wait for it: the store tells
// every server of a revocation (TokenRevocations: NOTIFY on PostgreSQL)
// and each empties its cache at once; the TTL only bounds a revocation
// whose notification is lost with the store's connection (which is
// followed by a wake-up, and so an emptied cache, once it is back).
const tokenTTL = time.Second

// maxCachedTokens bounds the cache: past it, it is emptied. Only tokens
// found are cached, so random values sent by anyone do not fill it.
const maxCachedTokens = 10000

// tokenCache keeps the tokens of recent requests, by hash, so that a
// request costs no read of the store (docs/teams.md has the figures).
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
	// gen counts the emptyings: a look-up that began before one does not
	// cache what it read, which may predate the revocation.
	gen uint64
}

type cachedToken struct {
	t     *store.Token
	until time.Time
}

// get returns the cached token of hash, or nil and the generation a
// look-up in the store begins at.
func (c *tokenCache) get(hash string) (*store.Token, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[hash]; ok && time.Now().Before(e.until) {
		return e.t, c.gen
	}
	return nil, c.gen
}

// put caches t, read in generation gen, unless the cache was emptied since.
func (c *tokenCache) put(hash string, t *store.Token, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedTokens {
		c.m = map[string]cachedToken{}
	}
	c.m[hash] = cachedToken{t: t, until: time.Now().Add(tokenTTL)}
}

// clear empties the cache: a token was revoked.
func (c *tokenCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
	c.gen++
}

// watchRevocations empties the cache of tokens at each revocation the
// store tells of, until the server stops or the store closes.
func (s *Server) watchRevocations() {
	ch := s.cfg.Store.TokenRevocations(s.stopping)
	go func() {
		for range ch {
			s.tokens.clear()
		}
	}()
}
