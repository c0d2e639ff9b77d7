package server

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/routines-dev/routines/internal/api"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// operators keeps an endpoint that tells of every namespace to the
// callers of the default namespace, the deployment's operators.
func operators(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := callerOf(r); c.Namespace != store.DefaultNamespace {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %s is of namespace %s: this is for the deployment's operators, with a token of namespace %s",
				c.Name, c.Namespace, store.DefaultNamespace))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// nameRE is what names of tokens and namespaces look like: they appear in
// commands, paths and the trail.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

func checkName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: want 1 to 64 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit, such as ci-deploy", what, name)
	}
	return nil
}

// manages reports whether caller c manages the tokens of namespace ns: an
// admin manages its own namespace's, an admin of the default namespace
// every namespace's.
func manages(c *store.Token, ns string) bool {
	return c.Namespace == ns || c.Namespace == store.DefaultNamespace
}

// createToken answers POST /v1/tokens: a new token, with its value shown
// this once.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	if !s.teams(w) {
		return
	}
	var in api.TokenCreate
	if !readJSON(w, r, &in) {
		return
	}
	c := callerOf(r)
	if in.Namespace == "" {
		in.Namespace = c.Namespace
	}
	noteTarget(r, in.Name)
	p := &store.TokenCreateParams{ID: ulid.Make().String(), Name: in.Name, Role: in.Role, Namespace: in.Namespace,
		CreatedBy: c.Name, Now: time.Now().UTC()}
	var err error
	switch {
	case checkName("token", in.Name) != nil:
		err = checkName("token", in.Name)
	case store.RoleRank(in.Role) < 0:
		err = fmt.Errorf("role %q: want one of %s", in.Role, strings.Join(store.Roles, ", "))
	case checkName("namespace", in.Namespace) != nil:
		err = checkName("namespace", in.Namespace)
	case in.Expires != "":
		var d routine.Duration
		if e := d.UnmarshalText([]byte(in.Expires)); e != nil || d.D() <= 0 {
			err = fmt.Errorf("expires %q: want a duration such as 30d or 12h", in.Expires)
		} else {
			exp := p.Now.Add(d.D())
			p.ExpiresAt = &exp
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !manages(c, in.Namespace) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %s is an admin of namespace %s: it makes tokens of that namespace only", c.Name, c.Namespace))
		return
	}
	value := NewToken()
	p.Hash = HashToken(value)
	t, err := s.cfg.Store.TokenCreate(r.Context(), p)
	switch {
	case errors.Is(err, routine.ErrConflict):
		writeError(w, http.StatusConflict, fmt.Sprintf("a token called %s exists already (revoked ones keep their names): choose another --name", in.Name))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, api.NewToken{Token: apiToken(t), Value: value})
}

// teams answers 501 unless the server keeps tokens in its store.
func (s *Server) teams(w http.ResponseWriter) bool {
	if !s.cfg.Teams {
		writeError(w, http.StatusNotImplemented, "this daemon has a single token (--token) and no tokens of its own: run `routines server`, or `routines serve` with --token, to manage tokens")
		return false
	}
	return true
}

// listTokens answers GET /v1/tokens: the tokens of the caller's namespace
// (every namespace's for an admin of the default one), never their values.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if !s.teams(w) {
		return
	}
	p := &store.TokenListParams{}
	if c := callerOf(r); c.Namespace != store.DefaultNamespace {
		p.Namespace = c.Namespace
	}
	list, err := s.cfg.Store.TokenList(r.Context(), p)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]api.Token, len(list))
	for i, t := range list {
		out[i] = apiToken(t)
	}
	writeJSON(w, http.StatusOK, out)
}

// revokeToken answers DELETE /v1/tokens/<name or id>: the token fails on
// its next request, on every server.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if !s.teams(w) {
		return
	}
	p := &store.TokenRevokeParams{Token: r.PathValue("ref"), Now: time.Now().UTC()}
	if c := callerOf(r); c.Namespace != store.DefaultNamespace {
		p.Namespace = c.Namespace
	}
	t, err := s.cfg.Store.TokenRevoke(r.Context(), p)
	if err == nil {
		// At once here; the other servers hear of it from the store.
		s.tokens.clear()
	}
	switch {
	case errors.Is(err, routine.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no token %s (routines tokens list names them)", p.Token))
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		noteTarget(r, t.Name)
		writeJSON(w, http.StatusOK, apiToken(t))
	}
}

func apiToken(t *store.Token) api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Role: t.Role, Namespace: t.Namespace, CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt}
}

// listNamespaces answers GET /v1/namespaces: the policies of every
// namespace for the operators, the caller's own for the others.
func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Store.NamespaceList(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	c := callerOf(r)
	out := []api.Namespace{}
	for _, ns := range list {
		if c.Namespace == store.DefaultNamespace || ns.Name == c.Namespace {
			out = append(out, apiNamespace(ns))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// setNamespace answers PUT /v1/namespaces/<name>, body api.NamespaceSet:
// it changes the fields of the namespace's policy that the body holds and
// keeps the others, and answers the whole policy. With regions, the
// namespace's runs execute only in those from then on, and a push of a
// routine that asks for another, or none, is refused; a routine of the
// namespace served already that asks for another region is refused here,
// by name: it would keep running there. max_running and max_queued are
// its ceilings, 0 for none (see docs/teams.md).
func (s *Server) setNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkName("namespace", name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var in api.NamespaceSet
	if !readJSON(w, r, &in) {
		return
	}
	ns, err := s.cfg.Store.NamespaceGet(r.Context(), name)
	switch {
	case errors.Is(err, routine.ErrNotFound):
		ns = &store.Namespace{Name: name}
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if in.Regions != nil {
		ns.Regions = nil
		for _, region := range *in.Regions {
			if region = strings.TrimSpace(region); region != "" {
				ns.Regions = append(ns.Regions, region)
			}
		}
	}
	for _, c := range []struct {
		field string
		in    *int
		to    *int
	}{{"max_running", in.MaxRunning, &ns.MaxRunning}, {"max_queued", in.MaxQueued, &ns.MaxQueued}} {
		if c.in == nil {
			continue
		}
		if *c.in < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %d: want 0 or more (0: no ceiling)", c.field, *c.in))
			return
		}
		*c.to = *c.in
	}
	for _, rt := range s.cfg.Routines.All() {
		if cmpNamespace(rt.Namespace) == name && !ns.AllowsRegion(rt.Region) {
			writeError(w, http.StatusConflict, fmt.Sprintf("routine %s of namespace %s asks for region %q, outside %s: push it with one of those regions first",
				rt.Name, name, rt.Region, strings.Join(ns.Regions, ", ")))
			return
		}
	}
	ns.UpdatedAt = time.Now().UTC()
	if err := s.cfg.Store.NamespacePut(r.Context(), ns); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.ceilings.forget()
	writeJSON(w, http.StatusOK, apiNamespace(ns))
}

func apiNamespace(ns *store.Namespace) api.Namespace {
	regions := ns.Regions
	if regions == nil {
		regions = []string{}
	}
	return api.Namespace{Name: ns.Name, Regions: regions, MaxRunning: ns.MaxRunning, MaxQueued: ns.MaxQueued, UpdatedAt: ns.UpdatedAt}
}

// checkRegion refuses a routine that a namespace's policy keeps out: one
// that asks for a region outside the namespace's regions, or none (it
// could run anywhere).
func (s *Server) checkRegion(r *http.Request, ns string, rt *routine.Routine) error {
	policy, err := s.cfg.Store.NamespaceGet(r.Context(), ns)
	switch {
	case errors.Is(err, routine.ErrNotFound):
		return nil
	case err != nil:
		return err
	case policy.AllowsRegion(rt.Region):
		return nil
	case rt.Region == "":
		return &Refused{Reason: fmt.Sprintf("namespace %s runs only in regions %s: give routine %s `region:` one of them",
			ns, strings.Join(policy.Regions, ", "), rt.Name)}
	}
	return &Refused{Reason: fmt.Sprintf("routine %s asks for region %s, outside the regions of namespace %s (%s): set `region:` to one of them",
		rt.Name, rt.Region, ns, strings.Join(policy.Regions, ", "))}
}

// listAudit answers GET /v1/audit: the trail of actions, oldest first;
// an admin of a namespace other than the default one reads its own.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := &store.ActionListParams{Actor: q.Get("actor"), Limit: 1000}
	if c := callerOf(r); c.Namespace != store.DefaultNamespace {
		p.Namespace = c.Namespace
	}
	if v := q.Get("since"); v != "" {
		since, err := parseSince(v, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "since="+err.Error())
			return
		}
		p.Since = since
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, http.StatusBadRequest, "limit="+v+": want a number from 1 to 100000")
			return
		}
		p.Limit = n
	}
	list, err := s.cfg.Store.ActionList(r.Context(), p)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]api.Action, len(list))
	for i, a := range list {
		out[i] = api.Action{Time: a.Time, Actor: a.Actor, Role: a.Role, Namespace: a.Namespace, Source: a.Source,
			Action: a.Action, Target: a.Target, Outcome: a.Outcome, Detail: a.Detail}
	}
	writeJSON(w, http.StatusOK, out)
}

// parseSince reads a time (RFC 3339) or a duration ago (90m, 7d).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	var d routine.Duration
	if err := d.UnmarshalText([]byte(v)); err != nil {
		return time.Time{}, fmt.Errorf("%s: want a time such as 2026-12-04T09:00:00Z, or a duration ago such as 90m, 24h or 7d", v)
	}
	return now.Add(-d.D()), nil
}
